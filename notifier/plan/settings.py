"""Settings of the response plan: the [plan] table and its [[plan.steps]].

The default plan is the five steps of the Danish guidance this project was built from
(a workplace's "beredskabsplan"). A case copies the plan's steps when it opens; a later
change here affects new cases only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from storage.settings import FORBID_UNKNOWN_KEYS

StepOwner = Literal["manager", "reporter", "safety_rep", "hr"]
DueAfter = Literal["intake", "first_absence_day"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday",
                             "saturday", "sunday")


@dataclass(frozen=True)
class PlanText:
    """A text in Danish and English."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    da: str
    en: str

    def in_language(self, language: str) -> str:
        """The text in `da` or `en` (Danish for anything else)."""
        return self.en if language == "en" else self.da


@dataclass(frozen=True)
class PlanStep:
    """One step of the plan: a [[plan.steps]] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    key: str
    title: PlanText
    description: PlanText
    owner: StepOwner = "manager"
    # ISO 8601 duration (P1D, PT4H, P2W); empty: the step has no deadline.
    due: str = ""
    # Count the days of `due` as working days (Monday to Friday, minus Danish public holidays).
    working_days: bool = False
    # What `due` counts from: the case's intake, or the first day of absence once recorded.
    due_after: DueAfter = "intake"


DEFAULT_STEPS: tuple[PlanStep, ...] = (
    PlanStep(
        key="first-aid",
        title=PlanText(da="Psykisk førstehjælp", en="Psychological first aid"),
        description=PlanText(
            da="Tal med medarbejderen hurtigst muligt. Lyt, og aftal hvem der gør hvad, hvor "
               "I taler sammen, og hvornår ledelsen får besked.",
            en="Talk to the employee as soon as possible. Listen, and agree who does what, "
               "where you talk, and when management is told."),
        due="P1D", working_days=True,
    ),
    PlanStep(
        key="documentation",
        title=PlanText(da="Dokumentation", en="Documentation"),
        description=PlanText(
            da="Sørg for at beviserne er samlet og sikret (Chikanemail har gemt alt det "
               "modtagne). Skriv ned hvad der skete, hvor, hvem der var involveret, dato og "
               "klokkeslæt, og om der var vidner.",
            en="Make sure the evidence is collected and secured (Chikanemail has kept "
               "everything it received). Write down what happened, where, who was involved, "
               "the date and time, and any witnesses."),
        due="P2D", working_days=True,
    ),
    PlanStep(
        key="stop",
        title=PlanText(da="Stop chikanen", en="Stop the harassment"),
        description=PlanText(
            da="Det er ledelsen, aldrig medarbejderen, der kontakter den, der chikanerer. Bed "
               "om at få krænkende indhold fjernet, hvor det er muligt.",
            en="Management, never the employee, contacts the harasser. Ask for offending "
               "content to be taken down where possible."),
        due="P3D", working_days=True,
    ),
    PlanStep(
        key="registration",
        title=PlanText(da="Registrering og anmeldelse", en="Registration and reporting"),
        description=PlanText(
            da="Registrér hændelsen internt. Er den en arbejdsskade med fravær, så anmeld den "
               "til Arbejdstilsynet via EASY senest 14 dage efter første fraværsdag. Hjælp "
               "medarbejderen med at anmelde til politiet, hvis medarbejderen ønsker det.",
            en="Register the incident internally. If it is a work injury with absence, report "
               "it to the Danish Working Environment Authority (Arbejdstilsynet) via EASY "
               "within 14 days of the first day of absence. Help the employee report to the "
               "police if they want to."),
        # BEK nr. 941 of 2022, § 9: 14 days from the first day of absence.
        due="P14D", working_days=False, due_after="first_absence_day",
    ),
    PlanStep(
        key="follow-up",
        title=PlanText(da="Opfølgning og debriefing", en="Follow-up and debriefing"),
        description=PlanText(
            da="Hold et opfølgningsmøde med medarbejderen, og afgør om sagen kan lukkes. "
               "Arbejdsmiljøgruppen analyserer hændelsen.",
            en="Hold a follow-up meeting with the employee and decide whether the case can "
               "be closed. The safety group analyses the incident."),
        due="P20D", working_days=True,
    ),
)

# Domains shared by many unrelated people: a match on one of them says nothing.
DEFAULT_FREE_MAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "googlemail.com", "hotmail.com", "hotmail.dk", "outlook.com", "outlook.dk",
    "live.com", "live.dk", "msn.com", "yahoo.com", "yahoo.dk", "icloud.com", "me.com",
    "mac.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.net", "mail.com",
    "jubii.dk", "mail.dk", "get2net.dk", "stofanet.dk", "webspeed.dk", "youmail.dk",
    "sol.dk", "ofir.dk", "tdcadsl.dk", "privat.dk",
)


@dataclass(frozen=True)
class PlanSettings:
    """The response plan and its clock: the [plan] table."""

    __pydantic_config__ = FORBID_UNKNOWN_KEYS

    steps: tuple[PlanStep, ...] = DEFAULT_STEPS
    # The manager acknowledges by replying (or `chikanemail cases ack`). Not acknowledged
    # within this: the deputy is told; again this long: the default manager.
    acknowledge_within: str = "P1D"
    acknowledge_in_working_days: bool = True
    # Reminders to a step's owner: this many working days before its deadline (0: the day).
    remind_before_working_days: tuple[int, ...] = (1, 0)
    # Also remind once when a deadline has passed and the step is not done.
    remind_overdue: bool = True
    # Local time (Europe/Copenhagen) of reminders, HH:MM.
    reminder_time: str = "08:00"
    # A weekly overview of each manager's open cases.
    digest: bool = True
    digest_weekday: Weekday = "monday"
    digest_time: str = "08:00"
    # Addresses of the owners `safety_rep` and `hr` (needed when a step names them).
    safety_rep: str = ""
    hr: str = ""
    # The step with key "registration" can be marked done only once the case's registration
    # is saved (the web form, or `chikanemail cases register`).
    registration_before_step: bool = True
    # Besides a case's manager and deputy, these may act on any case by replying.
    admins: tuple[str, ...] = ()
    # Days the workplace is closed besides weekends and public holidays: "12-24" (every
    # year) or "2026-12-24" (once).
    extra_closed_days: tuple[str, ...] = ()
    # How often the scheduler looks for due reminders, escalations and digests.
    tick_seconds: float = 60.0
    # Patterns across cases: how far back to look, which domains are too common to match,
    # and how close two screenshots' dHashes must be (Hamming distance, 64-bit hash).
    pattern_window_days: int = 365
    free_mail_domains: tuple[str, ...] = DEFAULT_FREE_MAIL_DOMAINS
    image_match_distance: int = 6
