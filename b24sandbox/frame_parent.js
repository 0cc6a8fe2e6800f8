// The portal page's side of the app frame protocol (what Bitrix24's BX.rest.AppLayout does), for the
// sandbox. It replies where the portal replies and stays silent where the portal is silent: an SDK call the
// portal never answers must hang or time out here too. Everything the portal's backend decides goes to
// POST /frame/call. window.__frameLog keeps every message for tests and for people reading the page.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("frame-config").textContent);
  var frame = document.getElementById("app-frame");
  var log = (window.__frameLog = []);
  var logList = document.getElementById("frame-log");

  function record(entry) {
    log.push(entry);
    if (logList) {
      var item = document.createElement("li");
      item.textContent = entry.method + (entry.replied ? " → replied" : entry.note ? " (" + entry.note + ")" : "");
      logList.appendChild(item);
    }
  }

  function reply(callback, result) {
    // Always a string, only when the request carried a callback.
    if (!callback) return false;
    frame.contentWindow.postMessage(callback + ":" + (result === undefined ? "" : JSON.stringify(result)),
      config.appOrigin);
    return true;
  }

  function backend(method, params) {
    return fetch(config.callUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sid: config.sid, method: method, params: params || {} }),
    }).then(function (response) {
      return response.json();
    });
  }

  function viaBackend(method, params, callback, entry) {
    return backend(method, params).then(function (answer) {
      if (answer.reply) entry.replied = reply(callback, answer.result);
      return answer;
    });
  }

  // --------------------------------------------------------------------------- the user picker
  var picker = document.getElementById("user-picker");

  function closePicker() {
    picker.hidden = true;
    picker.innerHTML = "";
  }

  function openPicker(multiple, callback, entry) {
    closePicker();
    var chosen = {};
    var box = document.createElement("div");
    box.className = "picker-box";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "Select an employee");
    var search = document.createElement("input");
    search.type = "search";
    search.placeholder = "Search employees";
    search.id = "user-picker-search";
    var list = document.createElement("ul");
    list.className = "picker-list";
    function render() {
      var needle = search.value.trim().toLowerCase();
      list.innerHTML = "";
      config.users.forEach(function (user) {
        if (needle && (user.name + " " + user.position).toLowerCase().indexOf(needle) < 0) return;
        var item = document.createElement("li");
        item.dataset.userId = user.id;
        if (multiple) {
          var box = document.createElement("input");
          box.type = "checkbox";
          box.checked = !!chosen[user.id];
          item.appendChild(box);
        }
        var name = document.createElement("span");
        name.textContent = user.name;
        var position = document.createElement("small");
        position.textContent = user.position;
        item.appendChild(name);
        item.appendChild(position);
        item.addEventListener("click", function () {
          if (multiple) {
            if (chosen[user.id]) delete chosen[user.id];
            else chosen[user.id] = user;
            render();
            return;
          }
          closePicker();
          entry.replied = reply(callback, user);
        });
        list.appendChild(item);
      });
    }
    search.addEventListener("input", render);
    var actions = document.createElement("div");
    actions.className = "picker-actions";
    if (multiple) {
      var select = document.createElement("button");
      select.textContent = "Select";
      select.id = "user-picker-select";
      select.addEventListener("click", function () {
        closePicker();
        entry.replied = reply(callback, Object.keys(chosen).map(function (id) { return chosen[id]; }));
      });
      actions.appendChild(select);
    }
    var cancel = document.createElement("button");
    cancel.textContent = "Cancel";
    cancel.id = "user-picker-cancel";
    cancel.addEventListener("click", closePicker);  // closing the picker: no reply at all
    actions.appendChild(cancel);
    box.appendChild(search);
    box.appendChild(list);
    box.appendChild(actions);
    picker.appendChild(box);
    picker.hidden = false;
    render();
    search.focus();
  }

  // --------------------------------------------------------------------------- the slider (openPath)
  var slider = document.getElementById("slider");
  var ALLOWED_PATH = /^\/(crm\/(deal|lead|contact|company|type)|marketplace|company\/personal\/user\/\d+|workgroups\/group\/\d+)\//;

  function openSlider(path, onClose) {
    slider.innerHTML = "";
    var panel = document.createElement("div");
    panel.className = "slider-panel";
    var close = document.createElement("button");
    close.className = "slider-close";
    close.id = "slider-close";
    close.textContent = "Close";
    var page = document.createElement("iframe");
    page.id = "slider-frame";
    page.src = config.sliderUrl + "&path=" + encodeURIComponent(path);
    close.addEventListener("click", function () {
      slider.hidden = true;
      slider.innerHTML = "";
      onClose();
    });
    panel.appendChild(close);
    panel.appendChild(page);
    slider.appendChild(panel);
    slider.hidden = false;
  }

  // --------------------------------------------------------------------------- commands
  var handlers = {
    getInitData: function (params, callback, entry) {
      return viaBackend("getInitData", params, callback, entry);
    },
    setInstall: function (params, callback, entry) {
      return viaBackend("setInstall", params, callback, entry);
    },
    setInstallFinish: function (params, callback, entry) {
      // The portal stores INSTALLED and reloads its own page; the frame never hears back.
      return backend("setInstallFinish", params).then(function (answer) {
        if (answer.result && answer.result.reload) window.location.href = answer.result.reload;
      });
    },
    resizeWindow: function (params, callback, entry) {
      var width = params.width === "100%" ? "100%" : (parseInt(params.width, 10) || 100) + "px";
      var height = parseInt(params.height, 10);
      frame.style.width = width;
      if (height > 0) frame.style.height = height + "px";
      entry.replied = reply(callback, { width: frame.offsetWidth, height: frame.offsetHeight });
    },
    setTitle: function (params, callback, entry) {
      document.getElementById("pagetitle").textContent = String(params.title || "");
      entry.replied = reply(callback, params);
    },
    setScroll: function (params, callback, entry) {
      var scroll = parseInt(params.scroll, 10);
      if (scroll >= 0) window.scrollTo(0, scroll);
      entry.replied = reply(callback, params);
    },
    reloadWindow: function () {
      window.location.reload();
    },
    selectUser: function (params, callback, entry) {
      openPicker(!!params.mult, callback, entry);
    },
    setAppOption: function (params, callback, entry) {
      return viaBackend("setAppOption", params, callback, entry);
    },
    setUserOption: function (params, callback, entry) {
      return viaBackend("setUserOption", params, callback, entry);
    },
    refreshAuth: function (params, callback, entry) {
      return viaBackend("refreshAuth", params, callback, entry);
    },
    openPath: function (params, callback, entry) {
      var path = String(params.path || "");
      if (!ALLOWED_PATH.test(path)) {
        entry.replied = reply(callback, { result: "error", errorCode: "PATH_NOT_AVAILABLE" });
        return;
      }
      openSlider(path, function () {
        entry.replied = reply(callback, { result: "close" });
      });
    },
    closeApplication: function () {},  // outside a slider: nothing happens
    imCallTo: function () {},
    imPhoneTo: function () {},
    imOpenMessenger: function () {},
    imOpenHistory: function () {},
  };

  function parse(data) {
    // BX.rest.AppLayout's split(): method first, callback second-to-last, APP_SID last, params between.
    if (typeof data === "string") {
      var pieces = data.split(":");
      if (pieces.length < 2) return null;
      var middle = pieces.length > 3 ? pieces.slice(1, -2).join(":") : "";
      var params;
      try {
        params = middle ? JSON.parse(middle) : [];
      } catch (error) {
        return null;
      }
      return {
        method: pieces[0],
        params: params,
        callback: pieces.length > 2 ? pieces[pieces.length - 2] : "",
        appSid: pieces[pieces.length - 1],
      };
    }
    if (data && typeof data === "object") {
      return { method: data.method, params: data.params || [], callback: data.callback, appSid: data.appSid };
    }
    return null;
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== config.appOrigin) return;  // dropped silently, as the portal does
    var message = parse(event.data);
    if (!message || message.appSid !== config.sid) return;
    var entry = { method: message.method, params: message.params, replied: false };
    var handler = handlers[message.method];
    if (!handler) {
      entry.note = "unknown: no reply";
      record(entry);
      return;
    }
    record(entry);
    var params = message.params && typeof message.params === "object" && !Array.isArray(message.params)
      ? message.params : {};
    Promise.resolve(handler(params, message.callback, entry)).catch(function (error) {
      entry.note = "failed: " + error;
    });
  });

  document.getElementById("app-form").submit();
})();
