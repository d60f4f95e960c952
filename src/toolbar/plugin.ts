/**
 * The cell toolbar control, its commands and the step badges.
 *
 * The control is the toolbar item `nbscale-step` of the "Cell" toolbar
 * (declared in schema/plugin.json under `jupyter.lab.toolbars`, so users can
 * move or remove it like any cell toolbar item); this plugin provides its
 * widget factory. The commands act on the cell named by `cellId`, or on the
 * active cell from the command palette.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, IToolbarWidgetRegistry } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

import { isNbscalePanel, readCellStep, writeCellStep } from '../cells';
import { targetLabel } from '../labels';
import { IStepOptions, STEP_TARGETS, StepTarget } from '../stepline';
import { CommandIDs, EXTENSION_ID, INbscaleSettings } from '../tokens';
import { NotebookBadges } from './badges';
import { memoryLabel, sameSize, withResource, withTarget } from './model';
import { StepControl } from './widget';

/** The toolbar item name, as in schema/plugin.json. */
export const STEP_TOOLBAR_ITEM = 'nbscale-step';

export const toolbarPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:cell-toolbar`,
  description:
    'A control on code cells to choose where they run (%%step target, memory, CPUs, GPUs), and step badges.',
  autoStart: true,
  requires: [INotebookTracker, INbscaleSettings],
  optional: [IToolbarWidgetRegistry, ITranslator, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settings: INbscaleSettings,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('nbscale');
    const { commands } = app;

    /** The cell a command acts on, with its notebook. */
    const resolve = (
      args: ReadonlyPartialJSONObject
    ): { panel: NotebookPanel; cell: Cell } | null => {
      const cellId = typeof args.cellId === 'string' ? args.cellId : null;
      if (cellId === null) {
        const panel = tracker.currentWidget;
        const cell = tracker.activeCell;
        return panel && cell && cell.model.type === 'code'
          ? { panel, cell }
          : null;
      }
      let found: { panel: NotebookPanel; cell: Cell } | null = null;
      tracker.forEach(panel => {
        const cell = panel.content.widgets.find(c => c.model.id === cellId);
        if (!found && cell) {
          found = { panel, cell };
        }
      });
      return found;
    };

    const current = (args: ReadonlyPartialJSONObject): IStepOptions | null => {
      const hit = resolve(args);
      return hit ? readCellStep(hit.cell.model).options : null;
    };

    const isStep = (args: ReadonlyPartialJSONObject): boolean => {
      const hit = resolve(args);
      return hit ? readCellStep(hit.cell.model).line !== null : false;
    };

    const enabled = (args: ReadonlyPartialJSONObject): boolean => {
      const hit = resolve(args);
      return hit !== null && isNbscalePanel(hit.panel);
    };

    const edit = (
      args: ReadonlyPartialJSONObject,
      change: (options: IStepOptions | null) => IStepOptions | null
    ): boolean => {
      const hit = resolve(args);
      if (!hit) {
        return false;
      }
      const { line, options } = readCellStep(hit.cell.model);
      // an unparsable hand-typed line is replaced only by an explicit choice
      // of options; the user sees it in the toolbar as "invalid step"
      return writeCellStep(
        hit.cell.model,
        change(line !== null && !options ? {} : options)
      );
    };

    commands.addCommand(CommandIDs.setStepTarget, {
      label: args => {
        const target = String(args.target ?? '');
        if (target === 'none') {
          return trans.__('Not a step');
        }
        return args.cellId === undefined
          ? trans.__('Run Cell on %1', targetLabel(trans, target))
          : targetLabel(trans, target);
      },
      caption: args =>
        args.target === 'none'
          ? trans.__(
              'Remove the %1 line: the cell runs in the kernel',
              '%%step'
            )
          : trans.__(
              'Write --on %1 in the cell’s %2 line',
              String(args.target ?? ''),
              '%%step'
            ),
      isEnabled: enabled,
      isToggled: args => {
        if (args.target === 'none') {
          return !isStep(args);
        }
        const options = current(args);
        return (
          options !== null &&
          (options.on ?? settings.values.defaultTarget) === args.target
        );
      },
      execute: args => {
        const target = String(args.target ?? '');
        const chosen: StepTarget | null = (
          STEP_TARGETS as readonly string[]
        ).includes(target)
          ? (target as StepTarget)
          : null;
        if (chosen === null && target !== 'none') {
          throw new Error(`nbscale: unknown step target ${target}`);
        }
        return edit(args, options =>
          withTarget(options, chosen, settings.values)
        );
      }
    });

    commands.addCommand(CommandIDs.setStepMemory, {
      label: args => {
        const memory = String(args.memory ?? '');
        if (memory === '') {
          return trans.__('No --memory (backend default)');
        }
        return args.cellId === undefined
          ? trans.__('Step Memory: %1', memoryLabel(memory))
          : memoryLabel(memory);
      },
      isEnabled: enabled,
      isToggled: args => {
        const options = current(args);
        const memory = String(args.memory ?? '');
        if (memory === '') {
          return options !== null && options.memory === undefined;
        }
        return options !== null && sameSize(options.memory, memory);
      },
      execute: args => {
        const memory = String(args.memory ?? '');
        return edit(args, options =>
          withResource(
            options,
            'memory',
            memory === '' ? undefined : memory,
            settings.values
          )
        );
      }
    });

    commands.addCommand(CommandIDs.setStepCpu, {
      label: args => {
        const n = Number(args.cpu ?? 0);
        return n > 0
          ? trans._n('%1 CPU', '%1 CPUs', n)
          : trans.__('No --cpu (backend default)');
      },
      isEnabled: enabled,
      isToggled: args => {
        const options = current(args);
        const n = Number(args.cpu ?? 0);
        return options !== null && (options.cpu ?? 0) === n;
      },
      execute: args => {
        const n = Number(args.cpu ?? 0);
        return edit(args, options =>
          withResource(options, 'cpu', n > 0 ? n : undefined, settings.values)
        );
      }
    });

    commands.addCommand(CommandIDs.setStepGpu, {
      label: args => {
        const n = Number(args.gpu ?? -1);
        return n >= 0
          ? trans._n('%1 GPU', '%1 GPUs', n)
          : trans.__('No --gpu (backend default)');
      },
      isEnabled: enabled,
      isToggled: args => {
        const options = current(args);
        const n = Number(args.gpu ?? -1);
        return options !== null && (options.gpu ?? -1) === n;
      },
      execute: args => {
        const n = Number(args.gpu ?? -1);
        return edit(args, options =>
          withResource(options, 'gpu', n >= 0 ? n : undefined, settings.values)
        );
      }
    });

    if (palette) {
      const category = 'nbscale';
      palette.addItem({
        command: CommandIDs.setStepTarget,
        args: { target: 'none' },
        category
      });
      for (const target of STEP_TARGETS) {
        palette.addItem({
          command: CommandIDs.setStepTarget,
          args: { target },
          category
        });
      }
      for (const memory of ['1G', '2G', '4G', '8G', '16G', '32G', '64G']) {
        palette.addItem({
          command: CommandIDs.setStepMemory,
          args: { memory },
          category
        });
      }
    }

    if (toolbarRegistry) {
      toolbarRegistry.addFactory<Cell>('Cell', STEP_TOOLBAR_ITEM, cell => {
        const panel =
          tracker.find(p => p.content.widgets.includes(cell)) ?? null;
        return new StepControl({ cell, panel, commands, settings, trans });
      });
    }

    tracker.widgetAdded.connect((_, panel) => {
      new NotebookBadges(panel, settings, trans, commands);
    });
  }
};
