"""The upload form of a new import."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from members.importing.files import FILE_TOO_LARGE, limits_get, size_text
from members.importing.registry import ImportKind
from members.models import ImportJob

FILE_TYPE_UNKNOWN = _("Upload a .csv, .txt or .xlsx file.")
_SUFFIXES = (".csv", ".txt", ".xlsx")


class ImportUploadForm(forms.Form):
    """Pick what the file holds (only kinds the user may import), the file, and the mode."""

    kind = forms.ChoiceField(label=_("What the file holds"))
    file = forms.FileField(label=_("File"))
    skip_bad_rows = forms.BooleanField(
        label=_("Skip bad rows"), required=False,
        help_text=ImportJob._meta.get_field("skip_bad_rows").help_text,
    )

    def __init__(self, *args, kinds: list[type[ImportKind]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind.key, kind.label) for kind in kinds]
        limit = size_text(limits_get().max_bytes)
        self.fields["file"].help_text = _(
            "CSV from Excel or a cash register (UTF-8 or Windows-1251, separated by “,” or "
            "“;”) or an Excel workbook (.xlsx; its first sheet), up to %(limit)s. The "
            "first row holds the column names."
        ) % {"limit": limit}

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(_SUFFIXES):
            raise ValidationError(FILE_TYPE_UNKNOWN, code="file_type")
        limit = limits_get().max_bytes
        if upload.size > limit:
            raise ValidationError(
                FILE_TOO_LARGE, code="too_large",
                params={"size": size_text(upload.size), "limit": size_text(limit)},
            )
        return upload
