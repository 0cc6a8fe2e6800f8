// Builds the in-portal app into inportal/static/inportal/: app.js + app.css under fixed names (the Django
// shell template loads those two), served by Django's static files under /static/inportal/.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import b24ui from '@bitrix24/b24ui-nuxt/vite'
import catalogues from './scripts/catalogues.mjs'

const here = (path) => fileURLToPath(new URL(path, import.meta.url))

export default defineConfig({
  base: '/static/inportal/',
  plugins: [
    vue(),
    b24ui({ colorMode: false, dts: false }),
    catalogues({ localeDir: here('../locale'), languages: ['ru', 'en'] }),
  ],
  build: {
    outDir: here('../inportal/static/inportal'),
    emptyOutDir: true,
    chunkSizeWarningLimit: 3000,
    rolldownOptions: {
      checks: { pluginTimings: false },
      input: here('src/main.js'),
      output: {
        entryFileNames: 'app.js',
        chunkFileNames: 'chunks/[name]-[hash].js',
        assetFileNames: (asset) =>
          (asset.names || []).some((name) => name.endsWith('.css')) ? 'app.css' : 'assets/[name]-[hash][extname]',
      },
    },
  },
})
