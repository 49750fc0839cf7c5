/**
 * A lakebook button on the notebook toolbar ("Schedule", "Publish").
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon, ToolbarButton } from '@jupyterlab/ui-components';

export interface INotebookButton {
  /** The toolbar item's name (`data-jp-item-name`). */
  name: string;
  /** Its place on the toolbar. */
  index: number;
  icon: LabIcon;
  label: string;
  className: string;
  tooltip: string;
  /** The command it runs, with the notebook's `path` as argument. */
  command: string;
}

/** Put the button on the toolbar of every notebook, those open now and those opened later. */
export function addNotebookButton(app: JupyterFrontEnd, notebooks: INotebookTracker, button: INotebookButton): void {
  const add = (notebook: NotebookPanel) =>
    notebook.toolbar.insertItem(
      button.index,
      button.name,
      new ToolbarButton({
        icon: button.icon,
        label: button.label,
        className: button.className,
        tooltip: button.tooltip,
        onClick: () => void app.commands.execute(button.command, { path: notebook.context.path })
      })
    );
  notebooks.forEach(add);
  notebooks.widgetAdded.connect((_, notebook) => add(notebook));
}
