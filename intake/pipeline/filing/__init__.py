"""The filing steps: after extraction, decide what a message is (automatic mail, a reply on
its case, a reply to no case, a report) and record it, one module per step.

The steps pass what they find along in one `Filing` (`intake.pipeline.filing.step`). Those
that write share one database transaction, so a crash leaves either nothing or all of it.
"""
