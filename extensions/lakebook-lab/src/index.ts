/**
 * lakebook in JupyterLab: the Lake panel in the left sidebar (catalog tree,
 * "Insert query", "Preview"), the Endpoints panel (model endpoints and a "try it"
 * form), the Jobs panel (notebook jobs, their history and output) with "Schedule"
 * on the notebook toolbar, the alerts of `type: lab` channels as notifications, the Alerts
 * panel (the monitor's alerts, its tab counting the open ones), and SQL highlighting for
 * `%%lake` cells.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  Notification
} from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import {
  LabIcon,
  refreshIcon,
  tableRowsIcon,
  ToolbarButton
} from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { AlertNotifier } from './alertnotifier';
import { alertsPanelPlugin } from './alertsplugin';
import { fetchRunOutput } from './api';
import { dashboardsPanelPlugin } from './dashboardsplugin';
import { ENDPOINTS_PANEL_ID, EndpointsPanel } from './endpointspanel';
import { endpointsIcon, jobsIcon, lakeIcon } from './icons';
import { JOBS_PANEL_ID, JobsPanel } from './jobspanel';
import { LakeCellHighlighter, SQL_MIME_TYPE } from './lakecells';
import { isLakeCell, ITableInfo, lakeQueryText } from './model';
import { addNotebookButton } from './notebookbutton';
import { LAKE_PANEL_ID, LakePanel } from './panel';
import { PreviewView } from './preview';
import { RunOutputView } from './runoutput';
import { scheduleNotebookDialog } from './scheduleform';

export namespace CommandIDs {
  export const openLakePanel = 'lakebook:open-lake-panel';
  export const refreshLakePanel = 'lakebook:refresh-lake-panel';
  export const insertQuery = 'lakebook:insert-query';
  export const previewTable = 'lakebook:preview-table';
  export const openEndpointsPanel = 'lakebook:open-endpoints-panel';
  export const openJobsPanel = 'lakebook:open-jobs-panel';
  export const openRunOutput = 'lakebook:open-run-output';
  export const scheduleNotebook = 'lakebook:schedule-notebook';
}

const PALETTE_CATEGORY = 'lakebook';

/**
 * Add a code cell below the active cell of the current notebook holding a
 * `%%lake` query over the table. Returns false (after telling the user) when no
 * notebook is open.
 */
export function insertLakeQuery(
  app: JupyterFrontEnd,
  notebooks: INotebookTracker,
  table: Pick<ITableInfo, 'name' | 'zone' | 'table'>
): boolean {
  const panel = notebooks.currentWidget;
  if (!panel || !panel.content.model) {
    Notification.warning(
      `Open a notebook first: "Insert query" adds a %%lake cell querying ${table.name} below its active cell.`,
      { autoClose: 6000 }
    );
    return false;
  }
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  if (notebook.activeCell?.model.type !== 'code') {
    NotebookActions.changeCellType(notebook, 'code');
  }
  notebook.activeCell?.model.sharedModel.setSource(lakeQueryText(table));
  app.shell.activateById(panel.id);
  return true;
}

/** The catalog entry for `name`, else one made from the name (`zone.table`). */
function tableByName(panel: LakePanel, name: string): ITableInfo | Pick<ITableInfo, 'name' | 'zone' | 'table'> {
  for (const zone of panel.tree?.zones ?? []) {
    const found = zone.tables.find(node => node.info.name === name);
    if (found) {
      return found.info;
    }
  }
  const dot = name.indexOf('.');
  return { name, zone: name.slice(0, dot), table: name.slice(dot + 1) };
}

function openPreview(
  app: JupyterFrontEnd,
  previews: Map<string, MainAreaWidget<PreviewView>>,
  name: string
): MainAreaWidget<PreviewView> {
  const existing = previews.get(name);
  if (existing && !existing.isDisposed) {
    app.shell.activateById(existing.id);
    void existing.content.load();
    return existing;
  }
  const view = new PreviewView(name);
  const widget = new MainAreaWidget({ content: view });
  widget.id = `lakebook-preview-${name.replace(/[^A-Za-z0-9_-]/g, '-')}`;
  widget.addClass('lakebook-PreviewWidget');
  widget.title.label = `Preview ${name}`;
  widget.title.icon = tableRowsIcon;
  widget.title.closable = true;
  widget.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: `Load the first rows of ${name} again`,
      onClick: () => void view.load()
    })
  );
  previews.set(name, widget);
  widget.disposed.connect(() => previews.delete(name));
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
  void view.load();
  return widget;
}

const lakePanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:lake-panel',
  description: 'The Lake panel: zones, tables and columns of the lakebook catalog.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const previews = new Map<string, MainAreaWidget<PreviewView>>();
    const panel = new LakePanel({
      onInsertQuery: table =>
        void app.commands.execute(CommandIDs.insertQuery, { table: table.name }),
      onPreview: table =>
        void app.commands.execute(CommandIDs.previewTable, { table: table.name })
    });
    panel.title.icon = lakeIcon;
    panel.title.caption = 'Lake';
    app.shell.add(panel, 'left', { rank: 450 });
    if (restorer) {
      restorer.add(panel, LAKE_PANEL_ID);
    }

    app.commands.addCommand(CommandIDs.openLakePanel, {
      label: 'Show the Lake Panel',
      caption: 'Tables and columns of the lakebook catalog',
      icon: lakeIcon,
      execute: () => app.shell.activateById(LAKE_PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.refreshLakePanel, {
      label: 'Refresh the Lake Panel',
      icon: refreshIcon,
      execute: () => panel.refresh()
    });
    app.commands.addCommand(CommandIDs.insertQuery, {
      label: args =>
        args.table ? `Insert a %%lake Query over ${args.table}` : 'Insert a %%lake Query',
      execute: args =>
        insertLakeQuery(app, notebooks, tableByName(panel, String(args.table ?? '')))
    });
    app.commands.addCommand(CommandIDs.previewTable, {
      label: args => (args.table ? `Preview ${args.table}` : 'Preview a Table'),
      icon: tableRowsIcon,
      execute: args => {
        openPreview(app, previews, String(args.table ?? ''));
      }
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.openLakePanel, category: PALETTE_CATEGORY });
      palette.addItem({ command: CommandIDs.refreshLakePanel, category: PALETTE_CATEGORY });
    }
  }
};

const endpointsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:endpoints-panel',
  description: 'The Endpoints panel: model endpoints with their figures and a "try it" form.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new EndpointsPanel();
    panel.title.icon = endpointsIcon;
    panel.title.caption = 'Model endpoints';
    app.shell.add(panel, 'left', { rank: 460 });
    if (restorer) {
      restorer.add(panel, ENDPOINTS_PANEL_ID);
    }
    app.commands.addCommand(CommandIDs.openEndpointsPanel, {
      label: 'Show the Endpoints Panel',
      caption: 'Model endpoints: status, figures and a "try it" form',
      icon: endpointsIcon,
      execute: () => app.shell.activateById(ENDPOINTS_PANEL_ID)
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.openEndpointsPanel, category: PALETTE_CATEGORY });
    }
  }
};

/**
 * Put a panel in the left sidebar (its layout kept by the restorer) with a command
 * that shows it.
 */
function addSidebarPanel(
  app: JupyterFrontEnd,
  restorer: ILayoutRestorer | null,
  panel: Widget,
  options: { icon: LabIcon; caption: string; rank: number; command: string; label: string }
): void {
  panel.title.icon = options.icon;
  panel.title.caption = options.caption;
  app.shell.add(panel, 'left', { rank: options.rank });
  restorer?.add(panel, panel.id);
  app.commands.addCommand(options.command, {
    label: options.label,
    caption: options.caption,
    icon: options.icon,
    execute: () => app.shell.activateById(panel.id)
  });
}

/**
 * A run's output: the notebook itself when the Lab can open it (the server gives its
 * path then), else its HTML rendering in a tab.
 */
async function openRunOutput(app: JupyterFrontEnd, job: string, runId: number): Promise<void> {
  const output = await fetchRunOutput(job, runId);
  if (output.notebook) {
    await app.commands.execute('docmanager:open', { path: output.notebook });
    return;
  }
  const widget = new MainAreaWidget({ content: new RunOutputView(output) });
  widget.id = `lakebook-run-output-${runId}`;
  widget.title.label = `${job} #${runId}`;
  widget.title.caption = `Output notebook of run ${runId} of ${job} (${output.status})`;
  widget.title.icon = jobsIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
}

const jobsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:jobs-panel',
  description: 'The Jobs panel (notebook jobs, history, Run now) and "Schedule" on the notebook toolbar.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new JobsPanel({
      onOpenOutput: (job, run) => void app.commands.execute(CommandIDs.openRunOutput, { job, run })
    });
    addSidebarPanel(app, restorer, panel, {
      icon: jobsIcon,
      caption: 'Notebook jobs',
      rank: 470,
      command: CommandIDs.openJobsPanel,
      label: 'Show the Jobs Panel'
    });
    app.commands.addCommand(CommandIDs.openRunOutput, {
      label: 'Open the Output of a Job Run',
      execute: args =>
        openRunOutput(app, String(args.job), Number(args.run)).catch(error =>
          Notification.error(`${(error as Error).message}`, { autoClose: 8000 })
        )
    });
    app.commands.addCommand(CommandIDs.scheduleNotebook, {
      label: 'Schedule this Notebook',
      caption: 'Run this notebook on a schedule: write a job definition (jobs/<name>.yaml)',
      icon: jobsIcon,
      isEnabled: () => notebooks.currentWidget !== null,
      execute: async args => {
        const path = args.path ? String(args.path) : notebooks.currentWidget?.context.path;
        const job = path ? await scheduleNotebookDialog(path) : null;
        if (job) {
          Notification.success(`Job ${job.name} scheduled: ${job.schedule} (${job.timezone})`, { autoClose: 5000 });
          app.shell.activateById(JOBS_PANEL_ID);
          await panel.refresh();
        }
      }
    });
    addNotebookButton(app, notebooks, {
      name: 'lakebook-schedule',
      index: 10,
      icon: jobsIcon,
      label: 'Schedule',
      className: 'lakebook-schedule-button',
      tooltip: 'Schedule this notebook as a job',
      command: CommandIDs.scheduleNotebook
    });
    if (palette) {
      palette.addItem({ command: CommandIDs.openJobsPanel, category: PALETTE_CATEGORY });
      palette.addItem({ command: CommandIDs.scheduleNotebook, category: PALETTE_CATEGORY });
    }
  }
};

const alertsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:alerts',
  description: 'The alerts of `type: lab` channels as notifications, each with its run\'s output.',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    const notifier = new AlertNotifier(
      (job, run) => void app.commands.execute(CommandIDs.openRunOutput, { job, run })
    );
    void app.restored.then(() => notifier.start());
  }
};

/** The code that makes `%%lake` known to an IPython kernel (quietly; loading twice is harmless). */
export const LOAD_MAGIC = '%load_ext lakebook';

/**
 * Before a `%%lake` cell of a Python notebook runs, load the magic in its kernel
 * (a silent execute request, sent ahead of the cell's own on the same channel),
 * so a query inserted from the Lake panel runs as it is, also after a kernel restart.
 */
function loadMagicBeforeLakeCells(app: JupyterFrontEnd, notebooks: INotebookTracker): void {
  NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
    if (cell.model.type !== 'code' || !isLakeCell(cell.model.sharedModel.getSource())) {
      return;
    }
    const panel = notebooks.find(p => p.content === notebook);
    const kernel = panel?.sessionContext.session?.kernel;
    if (!kernel) {
      return;
    }
    const spec = app.serviceManager.kernelspecs.specs?.kernelspecs[kernel.name];
    if (spec && spec.language.toLowerCase() !== 'python') {
      return;
    }
    kernel.requestExecute({ code: LOAD_MAGIC, silent: true, store_history: false });
  });
}

const lakeCellsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'lakebook-lab:lake-cells',
  description: `Highlights %%lake cells as SQL (${SQL_MIME_TYPE}) and loads the magic before they run.`,
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    languages: IEditorLanguageRegistry | null
  ) => {
    const watch = (panel: NotebookPanel) =>
      new LakeCellHighlighter(panel.content, languages);
    notebooks.forEach(watch);
    notebooks.widgetAdded.connect((_, panel) => watch(panel));
    loadMagicBeforeLakeCells(app, notebooks);
  }
};

export default [
  lakePanelPlugin,
  endpointsPanelPlugin,
  jobsPanelPlugin,
  alertsPlugin,
  dashboardsPanelPlugin,
  alertsPanelPlugin,
  lakeCellsPlugin
];
