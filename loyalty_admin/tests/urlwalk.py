"""Every URL of the project, with real ids in its path, and what each role may do there.

Shared by the URL walk (``test_urls_walk.py``) and the CSRF test
(``test_access_csrf.py``). The list is generated from the URL resolver, so pages that
other apps add are walked as soon as they are routed; a page whose path parameter cannot
be filled from the data fails the walk with the parameter's name, to be added to
``PARAM_VALUES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.management import call_command, get_commands
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver, reverse

# Namespaces and URL names anyone may open without logging in.
PUBLIC_NAMESPACES = {"surveys", "campaigns"}
PUBLIC_NAMES = {
    "health", "set_language", "admin:login", "admin:logout", "admin:login_code",
    "admin:password_reset", "admin:password_reset_done", "admin:password_reset_confirm",
    "admin:password_reset_complete",
}
# Pages every staff member may open whatever their permissions.
EVERY_STAFF = {
    "admin:index", "admin:password_change", "admin:password_change_done", "admin:jsi18n",
    "admin:two_factor", "admin:login", "admin:logout", "admin:login_code", "health",
    "set_language", "", "admin:view_on_site",
    # Each person's own exports, and the app page that lists them.
    "admin:members_exportjob_changelist", "admin:app_list",
}
# Admin URL suffixes Django adds to every ModelAdmin, and the permissions each needs
# (any one of them) for a GET. A POST to add, change or delete needs that very one.
SUFFIX_PERMS = {
    "changelist": ("view", "change"),
    "add": ("add",),
    "change": ("view", "change"),
    "delete": ("delete",),
    "history": ("view", "change"),
    "export": ("view",),
    "autocomplete": (),
}
POST_PERMS = {"add": ("add",), "change": ("change",), "delete": ("delete",)}
# Custom admin pages and the permission each needs (any one of them). A custom page not
# listed here must at least need a permission on its ModelAdmin's model.
CUSTOM_PERMS = {
    "admin:members_member_adjust": ("members.adjust_points",),
    "admin:members_member_reverse": ("members.adjust_points",),
    "admin:members_member_status": ("members.change_member",),
    "admin:members_pointsadjustment_decide": ("members.approve_adjustment",),
    "admin:members_member_tier": ("rewards.change_membertier",),
    # Read-only pages that post a form to compute something, writing nothing.
    "admin:rewards_earningrule_simulate": (
        "rewards.view_earningrule", "rewards.change_earningrule",
    ),
    "admin:surveys_survey_results": ("surveys.view_survey", "surveys.change_survey"),
}
# Pages whose admin decides from finer rules than model permissions (which import kinds
# the person may load): the walk checks that a staff member without any permission is
# refused.
OWN_RULES = {
    "admin:members_importjob_changelist", "admin:members_importjob_add",
}
# Path parameters that are not an object id: a value, or a function of the URL name.
PARAM_VALUES: dict[str, Callable[[str], str]] = {
    "app_label": lambda name: "members",
    "status": lambda name: "blocked",
    # dashboards:export: the dashboard, then one of its tables.
    "name": lambda name: "overview",
    "table_key": lambda name: "summary",
    # campaigns_campaign_action: a step of the campaign's life cycle.
    "action": lambda name: "submit",
    # admin:view_on_site, the one object URL outside the model admins.
    "object_id": lambda name: _first_pk(apps.get_model("members", "Member")) or "0",
    "content_type_id": lambda name: str(
        apps.get_model("contenttypes", "ContentType").objects.get_for_model(
            apps.get_model("members", "Member")).pk
    ),
}
# Demo commands that need arguments or refuse to run in tests.
DEMO_COMMANDS_SKIPPED = {"demo_logins", "demo_seed"}


@dataclass
class Page:
    """One URL of the project, filled in, and the permissions it needs."""

    name: str  # "namespace:name"
    url: str
    model: type[models.Model] | None = None
    suffix: str = ""
    # Any one of these permissions opens the page (GET); None: staff only, no model.
    perms: tuple[str, ...] | None = None
    post_perms: tuple[str, ...] | None = None
    public: bool = False
    notes: list[str] = field(default_factory=list)


def _walk(patterns, prefix_ns: str = "", params: tuple[str, ...] = ()) -> Iterator:
    for entry in patterns:
        names = tuple(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            full_ns = f"{prefix_ns}:{ns}" if prefix_ns and ns else (ns or prefix_ns)
            yield from _walk(entry.url_patterns, full_ns, params + names)
        elif isinstance(entry, URLPattern):
            yield prefix_ns, entry, params + names


def _model_admins() -> dict[str, tuple[type[models.Model], admin.ModelAdmin]]:
    return {
        f"{model._meta.app_label}_{model._meta.model_name}_": (model, model_admin)
        for model, model_admin in admin.site._registry.items()
    }


def _first_pk(model: type[models.Model]) -> str | None:
    pk = model._base_manager.order_by("pk").values_list("pk", flat=True).first()
    return None if pk is None else str(pk)


def _model_for_param(param: str, app_label: str | None) -> type[models.Model] | None:
    """Return the model an ``<x>_id`` or ``<x>_pk`` parameter names, preferring ``app_label``."""
    stem = param.removesuffix("_id").removesuffix("_pk").replace("_", "")
    candidates = [m for m in apps.get_models() if m._meta.model_name == stem] or [
        m for m in apps.get_models() if m._meta.model_name.endswith(stem)
    ]
    candidates.sort(key=lambda m: (m._meta.app_label != app_label, m._meta.model_name))
    return candidates[0] if candidates else None


def _value_by_field(param: str, app_label: str | None) -> str | None:
    """Return a stored value of a field named ``param`` in the app (tokens, codes)."""
    app_models = apps.get_app_config(app_label).get_models() if app_label else []
    for model in app_models:
        names = {f.name for f in model._meta.concrete_fields}
        if param in names:
            value = model._base_manager.order_by("pk").values_list(param, flat=True).first()
            if value is not None:
                return str(value)
    return None


def _param_value(param, name, page, app_label, uncovered: list[str]) -> str | None:
    """Return a value for one path parameter: a real id when the data has one."""
    if param == "object_id" and page.model is not None:
        model = page.model
    elif param in PARAM_VALUES:
        return PARAM_VALUES[param](name)
    elif param.endswith(("_id", "_pk")) or param == "pk":
        model = page.model if param == "pk" else _model_for_param(param, app_label)
    else:
        return _value_by_field(param, app_label)
    if model is None:
        return None
    value = _first_pk(model)
    if value is None:
        # No row to open: the page is still walked (every role must be refused or
        # told it does not exist), but it is reported as not covered by real data.
        uncovered.append(f"{name} <{param}> ({model._meta.label})")
        return "0"
    return value


def pages() -> tuple[list[Page], list[str], list[str]]:
    """Return every named URL filled with real ids, the URLs that could not be filled,
    and the ones filled with a made-up id because their model has no row."""
    registry = _model_admins()
    found: list[Page] = []
    unfilled: list[str] = []
    uncovered: list[str] = []
    for namespace, pattern, params in _walk(get_resolver().url_patterns):
        if not pattern.name:
            continue  # unnamed: the admin's catch-all and object redirects
        name = f"{namespace}:{pattern.name}" if namespace else pattern.name
        page = Page(name=name, url="")
        page.public = namespace.split(":")[0] in PUBLIC_NAMESPACES or name in PUBLIC_NAMES
        app_label = None
        if namespace == "admin":
            prefix = max((p for p in registry if pattern.name.startswith(p)), key=len, default=None)
            if prefix is not None:
                page.model, model_admin = registry[prefix]
                page.suffix = pattern.name[len(prefix):]
                app_label = page.model._meta.app_label
        elif namespace:
            top = namespace.split(":")[-1]
            app_label = top if top in {a.label for a in apps.get_app_configs()} else None
        kwargs = {}
        for param in params:
            value = _param_value(param, name, page, app_label, uncovered)
            if value is None and page.public:
                value = "not-a-real-token"  # a public page must refuse it cleanly
            if value is None:
                unfilled.append(f"{name} <{param}>")
                break
            kwargs[param] = value
        else:
            page.url = reverse(name, kwargs=kwargs)
            _permissions_set(page)
            found.append(page)
    return found, unfilled, uncovered


def _perm(model: type[models.Model], action: str) -> str:
    return f"{model._meta.app_label}.{get_permission_codename(action, model._meta)}"


def _permissions_set(page: Page) -> None:
    if page.name in OWN_RULES or page.name in EVERY_STAFF:
        return
    if page.name in CUSTOM_PERMS:
        page.perms = page.post_perms = CUSTOM_PERMS[page.name]
    elif page.model is not None and page.suffix in SUFFIX_PERMS:
        page.perms = tuple(_perm(page.model, action) for action in SUFFIX_PERMS[page.suffix])
        if page.suffix in POST_PERMS:
            page.post_perms = tuple(
                _perm(page.model, action) for action in POST_PERMS[page.suffix]
            )
    elif page.model is not None:
        # A custom page of a ModelAdmin: at the very least a permission on its model to
        # read it, and one to change something to post to it.
        page.perms = tuple(
            _perm(page.model, action) for action in ("view", "change", "add", "delete")
        )
        page.post_perms = tuple(
            _perm(page.model, action) for action in ("change", "add", "delete")
        )
    # Pages outside the model admins (dashboards, account pages) keep perms None: the
    # walk then only demands that a staff member without any permission is refused.


def demo_data_load(stdout) -> None:
    """Fill the test database with a little of everything, through the demo commands."""
    call_command("demo_seed", members=3, stdout=stdout)
    for command in sorted(get_commands()):
        if command.startswith("demo_") and command not in DEMO_COMMANDS_SKIPPED:
            call_command(command, stdout=stdout)
