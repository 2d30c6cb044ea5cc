"""Message templates: Jinja2 in a sandbox, Chinese by default and English, editable and checked.

A template is keyed by (kind, channel, language). The built-in defaults below apply
until an admin stores an edited one (``templates`` table). Every kind has a fixed
set of fields its template may read (what the notification's payload carries, plus
the unit's and the recipient's names); a template reading anything else is refused
when saved, so a typo never reaches a visitor as an empty gap or a failed send.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from notify import models
from servicekit.localtime import local_zone

_COMMON = {"case_number", "unit", "unit_name", "recipient_name"}
FIELDS: dict[str, frozenset[str]] = {
    models.RECEIPT: frozenset(_COMMON | {"received_at", "due_at", "case_status"}),
    models.ROUTED: frozenset(_COMMON | {"routed_at", "due_at"}),
    models.ASSIGNMENT: frozenset(
        _COMMON | {"routed_at", "due_at", "role", "category", "summary", "location", "confidential"}
    ),
    models.ANSWER: frozenset(_COMMON | {"answer", "resolved_at"}),
    models.SATISFACTION: frozenset(_COMMON | {"answer", "resolved_at"}),
    models.WARNING: frozenset(_COMMON | {"due_at", "occurred_at"}),
    models.OVERDUE: frozenset(_COMMON | {"due_at", "occurred_at"}),
    models.ESCALATED: frozenset(
        _COMMON | {"due_at", "occurred_at", "level", "supervisor_unit", "supervisor"}
    ),
    models.EXTENDED: frozenset(_COMMON | {"due_at", "occurred_at"}),
}

# The text of each kind, shared by SMS, webhook and e-mail bodies and the letter.
_TEXT = {
    # A case resolved on the spot has no due date (intake publishes none): the visitor
    # already has the answer, and is promised none later.
    (models.RECEIPT, "zh"): (
        "【夜话】您反映的问题已登记，编号{{ case_number }}，"
        "{% if due_at %}我们将在{{ due_at | date }}前答复您。"
        "{% elif case_status == 'resolved_on_spot' %}已当场答复。{% endif %}"
        "凭编号可查询办理进度。"
    ),
    (models.RECEIPT, "en"): (
        "[Night Talk] Your issue is registered as {{ case_number }}"
        "{% if due_at %}; you will have an answer by {{ due_at | date }}"
        "{% elif case_status == 'resolved_on_spot' %} and was answered at the desk{% endif %}."
    ),
    (models.ROUTED, "zh"): (
        "【夜话】您反映的问题（编号{{ case_number }}）已交由{{ unit_name }}办理，"
        "办结时限{{ due_at | date }}。"
    ),
    (models.ROUTED, "en"): (
        "[Night Talk] Case {{ case_number }} is now handled by {{ unit_name }}, "
        "due {{ due_at | date }}."
    ),
    (models.ANSWER, "zh"): (
        "【夜话】您反映的问题（编号{{ case_number }}）已由{{ unit_name }}办结：{{ answer }}"
    ),
    (models.ANSWER, "en"): (
        "[Night Talk] {{ unit_name }} has answered case {{ case_number }}: {{ answer }}"
    ),
    (models.SATISFACTION, "zh"): (
        "【夜话】您对问题（编号{{ case_number }}）的办理结果是否满意？"
        "请回复1（满意）或2（不满意）。"
    ),
    (models.SATISFACTION, "en"): (
        "[Night Talk] Are you satisfied with how case {{ case_number }} was handled? "
        "Reply 1 (yes) or 2 (no)."
    ),
    # The new due date only: why it moved is the units' business.
    (models.EXTENDED, "zh"): (
        "【夜话】您反映的问题（编号{{ case_number }}）办理时限已延长至{{ due_at | date }}，"
        "{{ unit_name }}将在此前答复您。"
    ),
    (models.EXTENDED, "en"): (
        "[Night Talk] The answer to case {{ case_number }} is now due by {{ due_at | date }}; "
        "{{ unit_name }} will answer you by then."
    ),
    (models.ASSIGNMENT, "zh"): (
        "{{ unit_name }}：新交办件{{ case_number }}（{{ summary }}），"
        "请于{{ due_at | date }}前办结并答复来访群众。"
    ),
    (models.ASSIGNMENT, "en"): (
        "{{ unit_name }}: new case {{ case_number }} ({{ summary }}), "
        "to be resolved and answered by {{ due_at | date }}."
    ),
    (models.WARNING, "zh"): (
        "{{ unit_name }}：交办件{{ case_number }}将于{{ due_at | date }}到期，请抓紧办理。"
    ),
    (models.WARNING, "en"): (
        "{{ unit_name }}: case {{ case_number }} is due on {{ due_at | date }}."
    ),
    (models.OVERDUE, "zh"): (
        "{{ unit_name }}：交办件{{ case_number }}已于{{ due_at | date }}超期，"
        "请立即办理并说明情况。"
    ),
    (models.OVERDUE, "en"): (
        "{{ unit_name }}: case {{ case_number }} was due on {{ due_at | date }} and is overdue."
    ),
    # Levels 1 and 2 are the ladder's rungs (a month, three months unresolved); "major"
    # is a major case given a named supervisor, at any time.
    (models.ESCALATED, "zh"): (
        "{{ recipient_name }}同志：交办件{{ case_number }}（{{ unit_name }}）"
        "{% if level == 'major' %}列为重大事项挂牌督办，由您督办，"
        "{% else %}久拖未决，现列入挂牌督办（第{{ level }}级），{% endif %}请督促办理。"
    ),
    (models.ESCALATED, "en"): (
        "{{ recipient_name }}: case {{ case_number }} ({{ unit_name }}) "
        "{% if level == 'major' %}is a major case, now under listed supervision with you "
        "as its supervisor."
        "{% else %}is unresolved and now under listed supervision (level {{ level }})."
        "{% endif %}"
    ),
}

# An SMS carries an answer up to this many characters whole; a longer one (routing accepts
# 5,000) is cut to this length and the visitor told the letter has it whole. Chinese is cut
# at a character, English at a word.
SMS_ANSWER_LENGTH = 200

# What an SMS says where it differs from the shared text.
_SMS_TEXT = {
    (models.ANSWER, "zh"): (
        "【夜话】您反映的问题（编号{{ case_number }}）已由{{ unit_name }}办结："
        f"{{% if answer | length > {SMS_ANSWER_LENGTH} %}}"
        f"{{{{ answer | truncate({SMS_ANSWER_LENGTH}, true, '…', 0) }}}}"
        "（答复全文见《致来访者的一封信》）"
        "{% else %}{{ answer }}{% endif %}"
    ),
    (models.ANSWER, "en"): (
        "[Night Talk] {{ unit_name }} has answered case {{ case_number }}: "
        f"{{% if answer | length > {SMS_ANSWER_LENGTH} %}}"
        f"{{{{ answer | truncate({SMS_ANSWER_LENGTH}, false, '…', 0) }}}}"
        " (the full answer is in your letter)"
        "{% else %}{{ answer }}{% endif %}"
    ),
}

_SUBJECT = {
    "zh": "夜话 · {{ case_number }}",
    "en": "Night Talk · {{ case_number }}",
}

_LETTER = {
    "zh": (
        '<!DOCTYPE html>\n<html lang="zh"><head><meta charset="utf-8">'
        "<title>致来访者的一封信</title></head><body>\n"
        "<h1>致来访者的一封信</h1>\n"
        "<p>尊敬的{{ recipient_name }}：</p>\n<p>{TEXT}</p>\n"
        "<p>案件编号：{{ case_number }}</p>\n"
        "<p>感谢您对我们工作的信任和支持。</p>\n</body></html>\n"
    ),
    "en": (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>A letter to the visitor</title></head><body>\n"
        "<h1>A letter to the visitor</h1>\n"
        "<p>Dear {{ recipient_name }},</p>\n<p>{TEXT}</p>\n"
        "<p>Case number: {{ case_number }}</p>\n"
        "<p>Thank you for your trust.</p>\n</body></html>\n"
    ),
}


@dataclass(frozen=True)
class Source:
    """A template's source: subject (e-mail only) and body."""

    subject: str | None
    body: str


def default(kind: str, channel: str, language: str) -> Source:
    """Return the built-in template of a kind on a channel in a language."""
    text = _TEXT[(kind, language)]
    if channel == models.SMS:
        text = _SMS_TEXT.get((kind, language), text)
    if channel == models.LETTER:
        return Source(None, _LETTER[language].replace("{TEXT}", text))
    if channel == models.EMAIL:
        return Source(_SUBJECT[language], text)
    return Source(None, text)


def source(session: Session, kind: str, channel: str, language: str) -> Source:
    """Return the template in force: the stored edit, else the default."""
    stored = session.execute(
        _stored_statement(), {"kind": kind, "channel": channel, "language": language}
    ).first()
    return in_force(
        Source(stored.subject, stored.body) if stored is not None else None,
        kind,
        channel,
        language,
    )


def in_force(stored: Source | None, kind: str, channel: str, language: str) -> Source:
    """Return the stored edit of a template if there is one, else the default."""
    return stored if stored is not None else default(kind, channel, language)


@functools.cache
def _stored_statement():
    # Built once, read as plain columns: every delivery asks, and an ORM load of the row
    # costs several times the query.
    t = models.Template.__table__
    return select(t.c.subject, t.c.body).where(
        t.c.kind == bindparam("kind"),
        t.c.channel == bindparam("channel"),
        t.c.language == bindparam("language"),
    )


def _date(value: object) -> object:
    """Format an ISO time as a date of the programme's calendar; leave anything else as it is.

    The programme's zone (``NIGHTTALK_TIMEZONE``), the visitor's and the unit's: a case due
    at 03:00 UTC on 1 March is due on 28 February in New York.
    """
    if not isinstance(value, str):
        return value
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(local_zone()).date().isoformat()


@functools.cache
def _environment(channel: str) -> SandboxedEnvironment:
    # One per channel (two at most), kept: Jinja caches what it compiled per environment.
    # Sandboxed: templates are edited through the API and must not reach Python
    # internals. Strict: a missing field fails loudly rather than printing nothing.
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=channel == models.LETTER)
    env.filters["date"] = _date
    return env


# What a template may be made of: text, fields, conditions, arithmetic that cannot grow a
# text, and filters that do not make it much longer. Every part is evaluated at most once
# per render (no loops, macros, calls or assignments to build on), so rendering costs no
# more than the template's length times its fields': the sandbox alone stops
# ``range(200000)`` but not two loops of ``range(99999)``, ``'x' * 10**9`` or a macro
# calling itself twice, any of which would keep a delivery worker (and the request saving
# it) busy or out of memory. Another template cannot be included, extended or imported:
# a template stands alone.
_ALLOWED_NODES = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Filter,
    nodes.FilterBlock,
    nodes.Test,
    nodes.If,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Tuple,
    nodes.List,
    nodes.Dict,
    nodes.Pair,
    nodes.Keyword,
    nodes.EvalContextModifier,
)
ALLOWED_FILTERS = frozenset(
    {
        "abs",
        "capitalize",
        "count",
        "d",
        "date",
        "default",
        "e",
        "escape",
        "first",
        "float",
        "int",
        "last",
        "length",
        "lower",
        "round",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "wordcount",
    }
)
_REFUSED = {
    nodes.For: "loops ({% for %})",
    nodes.Macro: "macros ({% macro %})",
    nodes.CallBlock: "macros ({% call %})",
    nodes.Call: "calls (range(), a method, a macro)",
    nodes.Assign: "assignments ({% set %})",
    nodes.AssignBlock: "assignments ({% set %})",
    nodes.With: "assignments ({% with %})",
    nodes.Include: "other templates ({% include %})",
    nodes.Extends: "other templates ({% extends %})",
    nodes.Import: "other templates ({% import %})",
    nodes.FromImport: "other templates ({% from ... import %})",
    nodes.Block: "blocks ({% block %})",
    nodes.Mul: "the operator *",
    nodes.Mod: "the operator %",
    nodes.Pow: "the operator **",
}


def _refused_parts(parsed: nodes.Template) -> list[str]:
    """Return what the parsed template uses that a template may not, in order, once each."""
    refused: list[str] = []
    stack: list[nodes.Node] = [parsed]
    while stack:  # not recursive: a template may nest deeper than Python's stack
        node = stack.pop()
        if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            what = f"the filter {node.name} (may use: {', '.join(sorted(ALLOWED_FILTERS))})"
        elif not isinstance(node, _ALLOWED_NODES):
            what = _REFUSED.get(type(node), type(node).__name__)
        else:
            what = None
        if what is not None and what not in refused:
            refused.append(what)
        stack.extend(reversed(list(node.iter_child_nodes())))
    return refused


class InvalidTemplate(ValueError):
    """A template that cannot be saved, with messages by field (subject, body)."""

    def __init__(self, messages: dict[str, list[str]]) -> None:
        super().__init__(messages)
        self.messages = messages


def validate(kind: str, channel: str, template: Source) -> None:
    """Refuse a template that does not parse, reads unknown fields, or fails on sample values."""
    allowed = FIELDS[kind]
    env = _environment(channel)
    errors: dict[str, list[str]] = {}
    for field_name, text in (("subject", template.subject), ("body", template.body)):
        if text is None:
            continue
        try:
            parsed = env.parse(text)
        except TemplateSyntaxError as exc:
            errors[field_name] = [f"line {exc.lineno}: {exc.message}"]
            continue
        except RecursionError:
            errors[field_name] = ["nested too deeply"]
            continue
        refused = _refused_parts(parsed)
        if refused:
            errors[field_name] = [f"a template may not use {what}" for what in refused]
            continue
        try:
            unknown = sorted(meta.find_undeclared_variables(parsed) - allowed)
        except RecursionError:
            errors[field_name] = ["nested too deeply"]
            continue
        if unknown:
            errors[field_name] = [
                f"unknown field(s) {', '.join(unknown)}; a {kind} template may use: "
                + ", ".join(sorted(allowed))
            ]
            continue
        try:
            env.from_string(text).render({name: "x" for name in allowed})
        except TemplateError as exc:
            errors[field_name] = [f"does not render: {exc}"]
        except Exception as exc:  # noqa: BLE001 - whatever the sample values meet: the admin's
            errors[field_name] = [f"does not render: {type(exc).__name__}: {exc}"[:300]]
    if errors:
        raise InvalidTemplate(errors)


@dataclass(frozen=True)
class Rendered:
    subject: str | None
    body: str


# Compiling a template costs more than the rest of a delivery; an edited template is a new
# text and compiles once on first use.
@functools.lru_cache(maxsize=256)
def _compiled(channel: str, text: str) -> Template:
    env = _environment(channel)
    # Checked here too: a template stored before the check was made is refused as it
    # would be when saved now, rather than allowed to keep a sender busy.
    refused = _refused_parts(env.parse(text))
    if refused:
        raise TemplateError("a template may not use " + ", ".join(refused))
    return env.from_string(text)


def render(template: Source, channel: str, context: dict[str, object]) -> Rendered:
    """Fill a template with a notification's fields."""
    subject = _compiled(channel, template.subject).render(context) if template.subject else None
    return Rendered(subject, _compiled(channel, template.body).render(context))
