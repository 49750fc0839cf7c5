import { LabIcon } from '@jupyterlab/ui-components';

/** Waves over a lake: the Lake panel's sidebar icon. */
export const lakeIcon = new LabIcon({
  name: 'lakebook-lab:lake',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2.5c-.4 0-.8.2-1 .6L6.3 11c-.6 1-.9 2.1-.9 3.2 0 .5.1 1 .2 1.5.8-.5 1.7-.8 2.6-.8 1.2 0 2.1.4 2.9.8.4.2.7.3 1 .3s.6-.1 1-.3c.8-.4 1.7-.8 2.9-.8.9 0 1.8.3 2.6.8.1-.5.2-1 .2-1.5 0-1.1-.3-2.2-.9-3.2L13 3.1c-.2-.4-.6-.6-1-.6z"/>
    <path d="M3 18.2c1-.6 1.8-.9 2.9-.9 1.2 0 2 .4 2.8.8.7.3 1.3.6 2.3.6s1.6-.3 2.3-.6c.8-.4 1.6-.8 2.8-.8 1.1 0 1.9.3 2.9.9l.9.5-.9 1.6-.9-.5c-.8-.5-1.3-.6-2-.6-.8 0-1.3.2-2 .6-.8.4-1.7.8-3.1.8s-2.3-.4-3.1-.8c-.7-.4-1.2-.6-2-.6-.7 0-1.2.1-2 .6l-.9.5-.9-1.6.9-.5z"/>
  </g>
</svg>`
});

/** A plug with a spark: the Endpoints panel's sidebar icon. */
export const endpointsIcon = new LabIcon({
  name: 'lakebook-lab:endpoints',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M8 2h2v5h4V2h2v5h1a1 1 0 0 1 1 1v3a6 6 0 0 1-5 5.9V22h-2v-5.1A6 6 0 0 1 6 11V8a1 1 0 0 1 1-1h1V2z"/>
  </g>
</svg>`
});

/** A clock: the Jobs panel's sidebar icon and the notebook toolbar's "Schedule". */
export const jobsIcon = new LabIcon({
  name: 'lakebook-lab:jobs',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm0 2a8 8 0 1 1 0 16 8 8 0 0 1 0-16zm-1 3v6l5 3 1-1.7-4-2.4V7h-2z"/>
  </g>
</svg>`
});

/** A chart on a board: the Dashboards panel's sidebar icon and the notebook toolbar's "Publish". */
export const dashboardsIcon = new LabIcon({
  name: 'lakebook-lab:dashboards',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 3h18a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zm1 2v14h16V5H4zm2 10h2v2H6v-2zm4-4h2v6h-2v-6zm4-4h2v10h-2V7z"/>
  </g>
</svg>`
});

/** A bell: the Alerts panel's sidebar icon (its tab adds the open alerts' count). */
export const alertsIcon = new LabIcon({
  name: 'lakebook-lab:alerts',
  svgstr: `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M12 2a1.5 1.5 0 0 0-1.5 1.5v.7A6 6 0 0 0 6 10v5l-2 2v1h16v-1l-2-2v-5a6 6 0 0 0-4.5-5.8v-.7A1.5 1.5 0 0 0 12 2zm-2 17a2 2 0 0 0 4 0h-4z"/>
  </g>
</svg>`
});
