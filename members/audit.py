"""The audit log of programme configuration (:class:`members.models.ConfigChange`).

Every save, deletion and many-to-many change of the models named in
``settings.LOYALTY_AUDIT_MODELS`` is recorded from Django's model signals, so a change
is caught whether it comes from an admin page, a service, a task or the shell. The
person is the one of the current request (:class:`AuditActorMiddleware` in
``loyalty_admin.security`` sets it with :func:`audit_actor`); outside a request it is
``None``, shown as "system".

Not caught: ``QuerySet.update()`` and ``bulk_create()``, which send no signals. The
programme's configuration screens and services save rows one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.utils import timezone

SYSTEM = "system"
# Values of these fields are never written to the log, only that they changed.
SECRET_FIELDS = frozenset({"password"})
SECRET_MASK = "********"  # noqa: S105 - a mask, not a password
# Many-to-many sets larger than this are logged as a count, not one name per row.
M2M_LIST_MAX = 200

_actor: ContextVar[tuple[Any, str] | None] = ContextVar("audit_actor", default=None)
# The concrete models whose changes are logged; filled by audit_connect().
_audited: set[type[models.Model]] = set()


# ------------------------------------------------------------------ who


@contextmanager
def audit_actor(user, source: str = "") -> Iterator[None]:
    """Attribute the changes made inside the block to ``user`` (from ``source``)."""
    token = _actor.set((user, source))
    try:
        yield
    finally:
        _actor.reset(token)


def _actor_now() -> tuple[Any, str, str]:
    """Return (user or None, name, source) of whoever is making the current change."""
    current = _actor.get()
    if current is None:
        return None, SYSTEM, ""
    user, source = current
    if user is None or not getattr(user, "is_authenticated", False):
        return None, SYSTEM, source
    return user, user.get_username(), source


# ------------------------------------------------------------------ what


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def audited_models() -> set[type[models.Model]]:
    """Return the concrete models named by ``LOYALTY_AUDIT_MODELS`` less the exclusions.

    ``"app.*"`` stands for every concrete model of the app; a label whose app or model
    does not exist (yet) is skipped, so the list may name what other apps will bring.
    """
    from members.models import ConfigChange

    excluded = {label.lower() for label in settings.LOYALTY_AUDIT_EXCLUDE}
    found: set[type[models.Model]] = set()
    for label in settings.LOYALTY_AUDIT_MODELS:
        app_label, _dot, name = label.partition(".")
        try:
            if name == "*":
                candidates = list(apps.get_app_config(app_label).get_models())
            else:
                candidates = [apps.get_model(app_label, name)]
        except LookupError:
            continue
        for model in candidates:
            if model._meta.proxy or model._meta.auto_created or model is ConfigChange:
                continue
            if _label(model) not in excluded:
                found.add(model)
    return found


def _ignored(model: type[models.Model]) -> set[str]:
    return set(getattr(settings, "LOYALTY_AUDIT_IGNORED_FIELDS", {}).get(_label(model), ()))


def _logged_fields(model: type[models.Model]) -> list[models.Field]:
    """Return the fields whose values the log keeps: stored, not generated, not auto_now."""
    ignored = _ignored(model)
    return [
        field for field in model._meta.concrete_fields
        if not getattr(field, "generated", False)
        and not getattr(field, "auto_now", False)
        and field.name not in ignored and field.attname not in ignored
    ]


def _plain(field: models.Field, value: Any) -> Any:
    """Return ``value`` as JSON-ready data that compares equal however it was loaded."""
    if value is None:
        return None
    if not field.is_relation:
        try:
            # Values set in code may be of another type than the ones read back (0 for
            # Decimal("0.00"), "5" for 5): compare them as the field stores them.
            value = field.to_python(value)
        except ValidationError:
            pass
    if isinstance(value, Decimal) and isinstance(field, models.DecimalField):
        value = value.quantize(Decimal(1).scaleb(-field.decimal_places))
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = value.astimezone(UTC)
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _values(model: type[models.Model], row: dict[str, Any]) -> dict[str, Any]:
    """Return {field name: JSON value} of ``row`` (keyed by attname)."""
    return {
        field.name: _plain(field, row.get(field.attname)) for field in _logged_fields(model)
    }


def _instance_row(instance: models.Model) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname)
        for field in _logged_fields(type(instance))
    }


def _masked(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {
        name: (SECRET_MASK if name in SECRET_FIELDS and value else value)
        for name, value in values.items()
    }


def _record(instance: models.Model, action: str, changed: list[str], before, after) -> None:
    from members.models import ConfigChange

    user, name, source = _actor_now()
    ConfigChange.objects.create(
        actor=user, actor_name=name, source=source[:300],
        content_type=ContentType.objects.get_for_model(type(instance)),
        object_id=str(instance.pk), object_repr=str(instance)[:200],
        action=action, changed_fields=changed,
        before=_masked(before), after=_masked(after),
    )


# ------------------------------------------------------------------ signal receivers


def _is_audited(sender) -> bool:
    return getattr(sender, "_meta", None) is not None and (
        sender._meta.concrete_model in _audited
    )


def _before_save(sender, instance, raw=False, **kwargs) -> None:
    if raw or not _is_audited(sender):
        return
    instance._audit_before = None
    if instance._state.adding or instance.pk is None:
        return
    model = sender._meta.concrete_model
    row = (
        model._base_manager.using(instance._state.db or "default")
        .filter(pk=instance.pk)
        .values(*[field.attname for field in _logged_fields(model)])
        .first()
    )
    instance._audit_before = None if row is None else _values(model, row)


def _after_save(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not _is_audited(sender):
        return
    model = sender._meta.concrete_model
    after = _values(model, _instance_row(instance))
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None
    if created or before is None:
        _record(instance, "create", sorted(after), None, after)
        return
    changed = [name for name in after if after[name] != before.get(name)]
    if changed:
        _record(
            instance, "update", changed,
            {name: before.get(name) for name in changed},
            {name: after[name] for name in changed},
        )


def _after_delete(sender, instance, **kwargs) -> None:
    if not _is_audited(sender):
        return
    before = _values(sender._meta.concrete_model, _instance_row(instance))
    _record(instance, "delete", sorted(before), before, None)


def _m2m_side(sender, instance, reverse: bool, model) -> tuple[str, str, str] | None:
    """Return (field name as shown, source column, target column) of a through table."""
    owner = model if reverse else type(instance)
    for field in owner._meta.many_to_many:
        if field.remote_field.through is sender:
            if reverse:
                return (
                    field.remote_field.get_accessor_name(),
                    field.m2m_reverse_field_name(), field.m2m_field_name(),
                )
            return field.name, field.m2m_field_name(), field.m2m_reverse_field_name()
    return None


def _m2m_names(sender, source: str, target: str, instance, model) -> list[str] | dict:
    ids = list(
        sender._base_manager.filter(**{source: instance.pk})
        .values_list(target, flat=True)[: M2M_LIST_MAX + 1]
    )
    if len(ids) > M2M_LIST_MAX:
        return {"count": sender._base_manager.filter(**{source: instance.pk}).count()}
    # select_related(): names such as a permission's read their foreign keys (one query,
    # not one per row).
    return sorted(
        str(obj) for obj in model._base_manager.filter(pk__in=ids).select_related()
    )


def _m2m_changed(sender, instance, action, reverse, model, **kwargs) -> None:
    if not _is_audited(type(instance)):
        return
    side = _m2m_side(sender, instance, reverse, model)
    if side is None:
        return
    name, source, target = side
    pending = instance.__dict__.setdefault("_audit_m2m_before", {})
    if action.startswith("pre_"):
        pending[name] = _m2m_names(sender, source, target, instance, model)
        return
    before = pending.pop(name, None)
    after = _m2m_names(sender, source, target, instance, model)
    if before != after:
        _record(instance, "update", [name], {name: before}, {name: after})


def audit_connect() -> None:
    """Resolve the audited models and connect the receivers (once, when apps are ready)."""
    _audited.clear()
    _audited.update(audited_models())
    # Connected per audited model (and its proxies), not for every sender: a model with a
    # delete receiver loses Django's fast delete, so a bulk delete of roll-up rows or
    # campaign recipients would load and signal each row.
    for model in apps.get_models():
        if model._meta.concrete_model not in _audited:
            continue
        label = model._meta.label_lower
        pre_save.connect(_before_save, sender=model, dispatch_uid=f"audit-pre-save:{label}")
        post_save.connect(_after_save, sender=model, dispatch_uid=f"audit-post-save:{label}")
        post_delete.connect(_after_delete, sender=model,
                            dispatch_uid=f"audit-post-delete:{label}")
    # The sender of m2m_changed is the relation's through model, whatever the owner.
    m2m_changed.connect(_m2m_changed, dispatch_uid="audit-m2m")
