"""Rollup tables: one row per day and dimension, rebuilt from the index by ``rollups.py``.

The dashboards read these tables only, never the index, so a request costs the
same whether the region holds a thousand studies or a million. Days are
calendar days in ``settings.TIME_ZONE``. Rows carry counts and sums, never a
patient reference; the ``reader`` of ``DailyWorkload`` is a specialist (staff),
not a patient. Every row can be rebuilt at any time (``rollup_refresh``).

Each ``Daily*`` table also holds coarser rows: the sums of whole ISO weeks
(``span`` "week", ``day`` their Monday) and whole calendar months (``span``
"month", ``day`` their first day), built from the day rows after them. At a
million studies the day rows hardly compress the index (a region of 100
institutions and six modalities fills most of its 600 cells every day), so a
year read from day rows would sum some 200,000 rows per query; read as eleven
months and a few weeks and days at its edges (``spans.py``) it sums a tenth
of that. Tables with a modality also hold, per cell, a row summing every
modality (``modality`` "*"): a view without a modality filter reads those.
Each table's unique cell starts with span and modality, so what one query
reads — one span, one modality (or "*"), a range of days — is one range of
that index.

Each event is counted on the day it happened: a referral submitted on Monday
and accepted on Wednesday adds to Monday's ``submitted`` and to Wednesday's
``accepted``. That is what lets a refresh of recent days keep the tables exact.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution


class DailyRow(models.Model):
    """What every rollup row has: its day."""

    day = models.DateField(_("day"))

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.day}"


class Span(models.TextChoices):
    DAY = "day", _("day")
    WEEK = "week", _("week")
    MONTH = "month", _("month")


class SpannedRow(DailyRow):
    """A rollup row summing one day, or one whole week or month (``day`` is its first day)."""

    # A database default: the day rows are written by INSERT … SELECT without this column.
    span = models.CharField(_("span"), max_length=5, choices=Span.choices, db_default=Span.DAY)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.span} {self.day}"


def _institution(related: str, verbose: Any) -> models.ForeignKey[Institution, Institution]:
    # No database constraint: rollups are derived data, rebuilt wholesale, and must
    # never stand in the way of the index (nor slow its deletes with checks).
    return models.ForeignKey(
        Institution,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name=related,
        verbose_name=verbose,
    )


class DailyStudyVolume(SpannedRow):
    """Studies received per day, origin institution and modality, with their size."""

    institution = _institution("+", _("institution"))
    # The modality of the study's largest series (see rollups.study_modality).
    modality = models.CharField(_("modality"), max_length=16)
    studies = models.PositiveIntegerField(default=0)
    series = models.PositiveIntegerField(default=0)
    instances = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("daily study volume")
        verbose_name_plural = _("daily study volumes")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "modality", "day", "institution"], name="volume_unique_cell"
            )
        ]
        indexes = [models.Index(fields=["institution", "span", "day"], name="volume_inst_span")]


class DailyReferralFlow(SpannedRow):
    """Referrals from one institution to another per day, each event on its own day."""

    from_institution = _institution("+", _("from"))
    to_institution = _institution("+", _("to"))
    direction = models.CharField(_("direction"), max_length=8)
    submitted = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    # Over the referrals accepted that day: submitted → accepted, in minutes.
    minutes_to_accept_sum = models.FloatField(default=0)

    class Meta:
        verbose_name = _("daily referral flow")
        verbose_name_plural = _("daily referral flows")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "day", "from_institution", "to_institution", "direction"],
                name="flow_unique_cell",
            )
        ]
        indexes = [
            models.Index(fields=["from_institution", "span", "day"], name="flow_from_span"),
            models.Index(fields=["to_institution", "span", "day"], name="flow_to_span"),
        ]


class DailyTurnaround(SpannedRow):
    """Final reports signed per day: study received → report signed, in minutes."""

    origin = _institution("+", _("origin"))
    reading_institution = _institution("+", _("read by"))
    modality = models.CharField(_("modality"), max_length=16)
    reports = models.PositiveIntegerField(default=0)
    minutes_sum = models.FloatField(default=0)
    within_1h = models.PositiveIntegerField(default=0)
    within_4h = models.PositiveIntegerField(default=0)  # more than 1 h, at most 4 h
    within_24h = models.PositiveIntegerField(default=0)  # more than 4 h, at most 24 h
    over_24h = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily turnaround")
        verbose_name_plural = _("daily turnarounds")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "modality", "day", "origin", "reading_institution"],
                name="turnaround_unique_cell",
            )
        ]
        indexes = [
            models.Index(fields=["origin", "span", "day"], name="turnaround_origin_span"),
            models.Index(
                fields=["reading_institution", "span", "day"], name="turnaround_reader_span"
            ),
        ]


class DailyCritical(SpannedRow):
    """Critical results (危急值) per day of signing, and how soon the requester saw them."""

    origin = _institution("+", _("origin"))
    reading_institution = _institution("+", _("read by"))
    modality = models.CharField(_("modality"), max_length=16)
    critical = models.PositiveIntegerField(default=0)
    notified = models.PositiveIntegerField(default=0)
    notify_minutes_sum = models.FloatField(default=0)  # signed → notification sent
    seen = models.PositiveIntegerField(default=0)
    seen_minutes_sum = models.FloatField(default=0)  # signed → seen by a requesting doctor

    class Meta:
        verbose_name = _("daily critical results")
        verbose_name_plural = _("daily critical results")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "modality", "day", "origin", "reading_institution"],
                name="critical_unique_cell",
            )
        ]
        indexes = [
            models.Index(fields=["origin", "span", "day"], name="critical_origin_span"),
            models.Index(
                fields=["reading_institution", "span", "day"], name="critical_reader_span"
            ),
        ]


class DailyRecognition(SpannedRow):
    """Recognition decisions (互认 / 不互认) per day, deciding institution and study origin."""

    institution = _institution("+", _("deciding institution"))
    origin = _institution("+", _("origin"))
    modality = models.CharField(_("modality"), max_length=16)
    decisions = models.PositiveIntegerField(default=0)
    recognized = models.PositiveIntegerField(default=0)
    not_recognized = models.PositiveIntegerField(default=0)
    repeats = models.PositiveIntegerField(default=0)  # a repeat exam is linked
    saving_yuan = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        verbose_name = _("daily recognition")
        verbose_name_plural = _("daily recognition")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "modality", "day", "institution", "origin"],
                name="recognition_unique_cell",
            )
        ]
        indexes = [
            models.Index(fields=["institution", "span", "day"], name="recognition_inst_span"),
            models.Index(fields=["origin", "span", "day"], name="recognition_origin_span"),
        ]


class DailyRetrievals(SpannedRow):
    """Reads of a study by people of another institution than its origin, per day.

    Counted from the audit trail (study.view, study.retrieve, study.metadata):
    ``events`` is every audited read, ``studies`` the distinct studies read that
    day by that institution (a viewer opening one study makes many requests).
    """

    origin = _institution("+", _("origin"))
    reader_institution = _institution("+", _("reading institution"))
    studies = models.PositiveIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily cross-hospital retrievals")
        verbose_name_plural = _("daily cross-hospital retrievals")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "day", "origin", "reader_institution"],
                name="retrievals_unique_cell",
            )
        ]
        indexes = [
            models.Index(fields=["origin", "span", "day"], name="retrievals_origin_span"),
            models.Index(
                fields=["reader_institution", "span", "day"], name="retrievals_reader_span"
            ),
        ]


class DailyWorkload(SpannedRow):
    """Final reports signed per day by one specialist at one reading institution."""

    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        verbose_name=_("specialist"),
    )
    institution = _institution("+", _("reading institution"))
    modality = models.CharField(_("modality"), max_length=16)
    reports = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("daily reading workload")
        verbose_name_plural = _("daily reading workload")
        constraints = [
            models.UniqueConstraint(
                fields=["span", "modality", "day", "reader", "institution"],
                name="workload_unique_cell",
            )
        ]
        indexes = [models.Index(fields=["institution", "span", "day"], name="workload_inst_span")]


class MonthlyStorage(DailyRow):
    """Bytes received per month (``day`` is the month's first day), institution and modality.

    Built from DailyStudyVolume after it: "storage in use" at a date is the sum
    of the months before it plus a few days, not a scan of every day since the start.
    """

    institution = _institution("+", _("institution"))
    modality = models.CharField(_("modality"), max_length=16)
    studies = models.PositiveIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("monthly storage")
        verbose_name_plural = _("monthly storage")
        constraints = [
            models.UniqueConstraint(
                fields=["day", "institution", "modality"], name="storage_unique_cell"
            )
        ]


class RollupState(models.Model):
    """When each rollup table was last rebuilt, shown on the dashboard as "data as of"."""

    table = models.CharField(max_length=64, unique=True)
    refreshed_at = models.DateTimeField()
    since = models.DateField(null=True)
    seconds = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.table} {self.refreshed_at:%Y-%m-%d %H:%M}"
