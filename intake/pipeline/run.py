"""Running the steps on one message, in order: the filing steps that write share one
transaction, and a step that raises stops the run with its name."""

from __future__ import annotations

from collections.abc import Sequence

from intake.pipeline.filing.step import Filing, FilingStep
from intake.pipeline.step import MessageContext, PipelineStep
from storage.errors import ChikanemailError

Step = PipelineStep | FilingStep


class StepFailed(ChikanemailError):
    """A step raised: which one, and its error."""

    def __init__(self, step_name: str, error: Exception) -> None:
        super().__init__(f"{step_name}: {type(error).__name__}: {error}")
        self.step_name = step_name
        self.error = error


def run_steps(steps: Sequence[Step], message: MessageContext) -> Filing:
    """Run the steps on the message in order; once a step finishes the filing early, the
    filing steps after it are skipped (the others, such as reading screenshots, still run).
    Return what the filing found (`Filing.processed`: it recorded the message processed).

    Consecutive steps `in_transaction` run in one write transaction, committed after the
    last of them and rolled back, all of it, if any of them raises. Raises `StepFailed`
    naming the step that raised (a failed commit is named after the group's last step).
    """
    filing = Filing(message)
    position = 0
    while position < len(steps):
        end = position + 1
        if filing.finished and isinstance(steps[position], FilingStep):
            pass
        elif _in_transaction(steps[position]):
            while end < len(steps) and _in_transaction(steps[end]):
                end += 1
            _run_in_one_transaction(steps[position:end], filing)
        else:
            _run(steps[position], filing)
        position = end
    return filing


def _in_transaction(step: Step) -> bool:
    return isinstance(step, FilingStep) and step.in_transaction


def _run_in_one_transaction(steps: Sequence[Step], filing: Filing) -> None:
    try:
        with filing.message.database.write() as session:
            filing.session = session
            for step in steps:
                if filing.finished:
                    break
                _run(step, filing)
    except StepFailed:
        filing.processed = False  # rolled back with the rest
        raise
    except Exception as error:  # the commit failed
        filing.processed = False
        raise StepFailed(steps[-1].name, error) from error
    finally:
        filing.session = None


def _run(step: Step, filing: Filing) -> None:
    try:
        if isinstance(step, FilingStep):
            step.file(filing)
        elif step.run(filing.message) is True:
            filing.processed = True
    except Exception as error:
        raise StepFailed(step.name, error) from error
