/**
 * Small DOM helpers shared by the panels and the preview view.
 */
import { refreshIcon } from '@jupyterlab/ui-components';

import { LakeApiError } from './errors';

/** Create an element with class names, attributes and text (never HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: {
    className?: string;
    text?: string;
    title?: string;
    attrs?: Record<string, string>;
  } = {},
  children: (Node | null | undefined | false)[] = []
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (props.className) {
    element.className = props.className;
  }
  if (props.text !== undefined) {
    element.textContent = props.text;
  }
  if (props.title) {
    element.title = props.title;
  }
  for (const [name, value] of Object.entries(props.attrs ?? {})) {
    element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child) {
      element.appendChild(child);
    }
  }
  return element;
}

/** The error block: the message, then the hint saying what to do. */
export function errorBlock(error: unknown): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  const hint = error instanceof LakeApiError ? error.hint : '';
  return h('div', { className: 'lakebook-error', attrs: { role: 'alert' } }, [
    h('div', { className: 'lakebook-error-message', text: message }),
    hint ? h('div', { className: 'lakebook-error-hint', text: hint }) : null
  ]);
}

/** A sidebar panel's header: its title and a refresh button. */
export function panelHeader(title: string, tooltip: string, onRefresh: () => void): HTMLElement {
  const refreshButton = h(
    'button',
    {
      className: 'lakebook-refresh jp-ToolbarButtonComponent',
      title: tooltip,
      attrs: { type: 'button', 'aria-label': 'Refresh' }
    },
    [refreshIcon.element({ tag: 'span' })]
  );
  refreshButton.addEventListener('click', onRefresh);
  return h('div', { className: 'lakebook-header' }, [
    h('div', { className: 'lakebook-title', text: title }),
    refreshButton
  ]);
}
