import { createMemoryHistory, createRouter } from 'vue-router'
import Activity from './pages/ActivityPage.vue'
import CallDetail from './pages/CallDetailPage.vue'
import CallHandling from './pages/CallHandlingPage.vue'
import Connections from './pages/ConnectionsPage.vue'
import Employees from './pages/EmployeesPage.vue'
import Help from './pages/HelpPage.vue'
import Lines from './pages/LinesPage.vue'
import Status from './pages/StatusPage.vue'
import Wizard from './pages/WizardPage.vue'

// The frame has no address bar: pages are switched in memory, and every launch starts where it should
// (the wizard until it is done, else the status).
export function createAppRouter(state) {
  const adminOnly = { admin: true }
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/', redirect: () => (state.isAdmin && (state.mode === 'wizard' || !state.wizard.done) ? '/wizard' : '/status') },
      { path: '/wizard', name: 'wizard', component: Wizard, meta: adminOnly },
      { path: '/status', name: 'status', component: Status },
      { path: '/connections', name: 'connections', component: Connections, meta: adminOnly },
      { path: '/employees', name: 'employees', component: Employees, meta: adminOnly },
      { path: '/lines', name: 'lines', component: Lines, meta: adminOnly },
      { path: '/handling', name: 'handling', component: CallHandling, meta: adminOnly },
      { path: '/activity', name: 'activity', component: Activity, meta: adminOnly },
      { path: '/activity/:id', name: 'call', component: CallDetail, meta: adminOnly, props: true },
      { path: '/help', name: 'help', component: Help, meta: adminOnly },
      { path: '/:rest(.*)*', redirect: '/status' },
    ],
  })
  router.beforeEach((to) => (to.meta.admin && !state.isAdmin ? { name: 'status' } : true))
  return router
}
