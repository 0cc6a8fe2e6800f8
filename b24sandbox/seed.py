# ruff: noqa: RUF001  -- Cyrillic names in the demo data are intentional
"""Users for sandbox portals: a small predictable staff for tests, a realistic company for the demo."""

from __future__ import annotations

from random import Random

from b24sandbox.state import Portal, User

_FIRST = ["Анна", "Борис", "Виктор", "Галина", "Дмитрий", "Елена", "Жанна", "Игорь", "Ксения", "Леонид",
          "Мария", "Никита", "Ольга", "Павел", "Светлана", "Тимур", "Ульяна", "Фёдор", "Юлия", "Ярослав",
          "Emma", "Liam", "Sofia", "Noah", "Mia", "Lucas"]
_LAST = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
         "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов"]
_LAST_EN = ["Schmidt", "Johnson", "García", "Rossi", "Dubois", "Nowak"]
_POSITIONS = ["Sales manager", "Account manager", "Support engineer", "Head of sales", "Operator", "Accountant"]
_ZONES = ["Europe/Moscow", "Europe/Moscow", "Europe/Moscow", "Asia/Yekaterinburg", "Europe/Berlin"]
_TIMEMAN = ["OPENED"] * 6 + ["CLOSED", "PAUSED", "EXPIRED"]


def seed_default_staff(portal: Portal) -> None:
    """Five users tests can rely on: an admin, two agents, an inactive one, one without an extension."""
    portal.users = {
        1: User(1, "Anna", "Admin", "anna.admin@example.com", is_admin=True, uf_phone_inner="100", gender="F"),
        2: User(2, "Boris", "Agent", "boris.agent@example.com", uf_phone_inner="101", work_phone="+74951110101"),
        3: User(3, "Clara", "Agent", "clara.agent@example.com", uf_phone_inner="102", personal_mobile="+79161110102"),
        4: User(4, "Dmitry", "Former", "dmitry.former@example.com", active=False, uf_phone_inner="103"),
        5: User(5, "Elena", "Nophone", "elena.nophone@example.com", uf_phone_inner=None),
    }


def seed_demo_users(portal: Portal, rng: Random, count: int = 62) -> None:
    """A company of ``count`` employees (more than one ``user.get`` page) plus a bot and an e-mail user that
    ``user.get`` leaves out. About one in eight is dismissed, one in ten has no extension."""
    users: dict[int, User] = {}
    users[1] = User(1, "Анна", "Администраторова", "admin@example.com", is_admin=True, uf_phone_inner="100",
                    work_phone="+7 (495) 100-00-00", gender="F", work_position="Director", is_online=True)
    extension = 101
    for user_id in range(2, count + 1):
        first = rng.choice(_FIRST)
        latin = first.isascii()
        last = rng.choice(_LAST_EN if latin else _LAST)
        if not latin and first.endswith(("а", "я")):
            last += "а"
        active = rng.random() > 0.12
        has_ext = rng.random() > 0.1
        users[user_id] = User(
            id=user_id,
            name=first,
            last_name=last,
            email=f"user{user_id}@example.com",
            active=active,
            is_admin=user_id in (2, 3),
            uf_phone_inner=str(extension) if has_ext else rng.choice([None, ""]),
            work_phone=f"+7 (495) {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-{rng.randrange(10, 99)}"
            if rng.random() < 0.5
            else None,
            personal_mobile=f"+7 9{rng.randrange(10, 99)} {rng.randrange(100, 999)}-{rng.randrange(10, 99)}-"
            f"{rng.randrange(10, 99)}"
            if rng.random() < 0.6
            else None,
            timeman_status=rng.choice(_TIMEMAN),
            time_zone=rng.choice(_ZONES),
            gender="F" if (first.endswith(("а", "я")) or first in ("Emma", "Sofia", "Mia")) else "M",
            work_position=rng.choice(_POSITIONS),
            is_online=rng.random() < 0.4,
        )
        if has_ext:
            extension += 1
    bot_id = count + 1
    users[bot_id] = User(bot_id, "Marta", "Bot", "bot@example.com", user_type="bot")
    users[bot_id + 1] = User(bot_id + 1, "Mail", "Guest", "guest@example.org", user_type="email")
    portal.users = users


def seed_demo_portal(portal: Portal, rng: Random) -> None:
    """Users first, then the CRM (its responsible users are the portal's own)."""
    seed_demo_users(portal, rng)
    if portal.crm is not None:
        from b24sandbox import crm

        crm.seed_demo(portal, rng)
