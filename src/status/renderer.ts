/**
 * The step-status renderer: a mime renderer for
 * `application/vnd.nbscale.step+json` (see ./schema.ts).
 *
 * It is registered as a *mime* extension (package.json
 * `jupyterlab.mimeExtension`) so that JupyterLab adds it to the rendermime
 * registry before any notebook opens. A mime renderer has no access to the
 * application's commands, so the "Re-run with 2× memory" button only
 * dispatches a bubbling DOM event ({@link RERUN_EVENT}); the status plugin
 * (./plugin.ts) listens on notebooks, finds the cell the output belongs to,
 * rewrites its `%%step` line and runs it. Anywhere else (a rendered output in
 * a console or a viewer) the button is simply not shown.
 */
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { targetLabel } from '../labels';
import {
  elapsedNow,
  foreachFraction,
  jobStatesText,
  formatBytes,
  formatElapsed,
  rerunMemory
} from './format';
import {
  IStepStatus,
  STEP_STATUS_MIME,
  StepState,
  isFinalState,
  parseStepStatus
} from './schema';

/** The DOM event the re-run button dispatches (bubbles to the notebook). */
export const RERUN_EVENT = 'nbscale-rerun-step';

/** `detail` of a {@link RERUN_EVENT}. */
export interface IRerunEventDetail {
  status: IStepStatus;
  /** Set by the handler, so the button knows someone acted on it. */
  handled: boolean;
}

const TICK_MS = 500;

function stateLabel(trans: TranslationBundle, state: StepState): string {
  switch (state) {
    case 'queued':
      return trans.__('Queued');
    case 'starting':
      return trans.__('Starting');
    case 'running':
      return trans.__('Running');
    case 'succeeded':
      return trans.__('Succeeded');
    case 'failed':
      return trans.__('Failed');
    case 'cancelled':
      return trans.__('Cancelled');
  }
}

function errorKindLabel(trans: TranslationBundle, kind: string): string {
  switch (kind) {
    case 'oom':
      return trans.__('Out of memory');
    case 'exception':
      return trans.__('Exception');
    case 'timeout':
      return trans.__('Timed out');
    case 'killed':
      return trans.__('Killed');
    default:
      return kind;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Renders one step status; re-rendered in place by update_display_data. */
export class StepStatusRenderer
  extends Widget
  implements IRenderMime.IRenderer
{
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('jp-nbscale-StepStatus');
    this._trans = (options.translator ?? nullTranslator).load('nbscale');
    this._mimeType = options.mimeType;
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const status = parseStepStatus(model.data[this._mimeType]);
    this._status = status;
    this._stopTicking();
    this.node.textContent = '';
    if (!status) {
      this.node.textContent = this._trans.__(
        'nbscale: unreadable step status (is the extension older than the kernel?)'
      );
      return Promise.resolve();
    }
    this._build(status);
    if (!isFinalState(status.state) && status.startedAt) {
      this._timer = window.setInterval(() => this._tick(), TICK_MS);
    }
    return Promise.resolve();
  }

  dispose(): void {
    this._stopTicking();
    super.dispose();
  }

  private _stopTicking(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _tick(): void {
    if (!this._status || !this._elapsedNode) {
      return;
    }
    const ms = elapsedNow(this._status, Date.now());
    this._elapsedNode.textContent = ms === null ? '' : formatElapsed(ms);
  }

  private _build(s: IStepStatus): void {
    const trans = this._trans;
    const root = this.node;
    root.dataset.state = s.state;
    root.setAttribute('role', 'status');
    root.setAttribute(
      'aria-label',
      trans.__('Step %1: %2', s.step, stateLabel(trans, s.state))
    );

    // line 1: state, step, where
    const head = el('div', 'jp-nbscale-StepStatus-head');
    head.appendChild(
      el(
        'span',
        `jp-nbscale-StepStatus-state jp-nbscale-mod-${s.state}`,
        stateLabel(trans, s.state)
      )
    );
    head.appendChild(el('span', 'jp-nbscale-StepStatus-step', s.step));
    if (s.target) {
      head.appendChild(
        el(
          'span',
          'jp-nbscale-StepStatus-target',
          trans.__('on %1', targetLabel(trans, s.target))
        )
      );
    }
    if (s.worker) {
      head.appendChild(
        el(
          'span',
          'jp-nbscale-StepStatus-worker',
          trans.__('worker %1', s.worker)
        )
      );
    }
    if (s.jobId) {
      head.appendChild(
        el('span', 'jp-nbscale-StepStatus-job', trans.__('job %1', s.jobId))
      );
    }
    if (s.job && s.job.states.length > 0) {
      head.appendChild(
        el('span', 'jp-nbscale-StepStatus-jobStates', jobStatesText(s.job))
      );
    }
    if (s.attempt !== undefined && (s.attempt > 1 || (s.retries ?? 0) > 0)) {
      const of = (s.retries ?? 0) + 1;
      head.appendChild(
        el(
          'span',
          'jp-nbscale-StepStatus-attempt',
          trans.__('attempt %1 of %2', s.attempt, Math.max(of, s.attempt))
        )
      );
    }
    root.appendChild(head);

    // line 2: memory and time
    const facts = el('div', 'jp-nbscale-StepStatus-facts');
    const req = s.memory?.requestedBytes ?? null;
    const peak = s.memory?.peakBytes ?? null;
    if (req !== null || peak !== null) {
      const mem = el('span', 'jp-nbscale-StepStatus-memory');
      mem.textContent =
        req !== null && peak !== null
          ? trans.__(
              'memory %1 peak of %2 requested',
              formatBytes(peak),
              formatBytes(req)
            )
          : req !== null
            ? trans.__('memory %1 requested', formatBytes(req))
            : trans.__('memory %1 peak', formatBytes(peak as number));
      facts.appendChild(mem);
      if (req !== null && peak !== null && req > 0) {
        const meter = el('meter', 'jp-nbscale-StepStatus-memoryMeter');
        meter.min = 0;
        meter.max = req;
        meter.high = req * 0.9;
        meter.value = Math.min(peak, req);
        meter.setAttribute('aria-label', trans.__('peak memory of requested'));
        facts.appendChild(meter);
      }
    }
    const ms = elapsedNow(s, Date.now());
    if (ms !== null) {
      const time = el('span', 'jp-nbscale-StepStatus-elapsed');
      time.setAttribute('aria-label', trans.__('elapsed time'));
      time.textContent = formatElapsed(ms);
      this._elapsedNode = time;
      facts.appendChild(time);
    } else {
      this._elapsedNode = null;
    }
    if (facts.childElementCount > 0) {
      root.appendChild(facts);
    }

    // foreach progress
    if (s.foreach) {
      const f = s.foreach;
      const row = el('div', 'jp-nbscale-StepStatus-foreach');
      const bar = el('progress', 'jp-nbscale-StepStatus-progress');
      bar.max = 1;
      bar.value = foreachFraction(f);
      bar.setAttribute(
        'aria-label',
        trans.__('%1 of %2 items finished', f.done + f.failed, f.total)
      );
      row.appendChild(bar);
      row.appendChild(
        el(
          'span',
          'jp-nbscale-StepStatus-counts',
          trans.__(
            '%1/%2 done · %3 running · %4 failed',
            f.done,
            f.total,
            f.running,
            f.failed
          )
        )
      );
      root.appendChild(row);
    }

    // the error, and the way out of an OOM
    if (s.error) {
      const row = el('div', 'jp-nbscale-StepStatus-error');
      row.appendChild(
        el(
          'span',
          'jp-nbscale-StepStatus-errorKind',
          errorKindLabel(trans, s.error.kind)
        )
      );
      if (s.error.message) {
        row.appendChild(
          el('span', 'jp-nbscale-StepStatus-errorMessage', s.error.message)
        );
      }
      root.appendChild(row);
      if (s.error.kind === 'oom' && s.state === 'failed') {
        root.appendChild(this._rerunButton(s));
      }
    }
  }

  private _rerunButton(s: IStepStatus): HTMLElement {
    const trans = this._trans;
    const button = el(
      'button',
      'jp-Button jp-mod-styled jp-mod-accept jp-nbscale-StepStatus-rerun',
      trans.__('Re-run with 2× memory')
    );
    button.type = 'button';
    // the memory is computed again by the handler from the cell's line;
    // this one is only a hint for the tooltip
    button.title = trans.__(
      'Write --memory %1 into the %2 line and run the cell again',
      rerunMemory(null, s),
      '%%step'
    );
    button.addEventListener('click', () => {
      const detail: IRerunEventDetail = { status: s, handled: false };
      button.dispatchEvent(
        new CustomEvent<IRerunEventDetail>(RERUN_EVENT, {
          bubbles: true,
          detail
        })
      );
      if (detail.handled) {
        button.disabled = true;
      }
    });
    return button;
  }

  private _trans: TranslationBundle;
  private _mimeType: string;
  private _status: IStepStatus | null = null;
  private _timer: number | null = null;
  private _elapsedNode: HTMLElement | null = null;
}

/** The renderer factory for the step-status MIME type. */
export const stepStatusRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [STEP_STATUS_MIME],
  // ahead of text/plain and JSON viewers
  defaultRank: 10,
  createRenderer: options => new StepStatusRenderer(options)
};

/** The mime extension (package.json `jupyterlab.mimeExtension`). */
const extension: IRenderMime.IExtension = {
  id: 'jupyterlab-nbscale:step-status-renderer',
  description: 'Renders the live status of %%step cells.',
  rendererFactory: stepStatusRendererFactory,
  rank: 10,
  dataType: 'json'
};

export default extension;
