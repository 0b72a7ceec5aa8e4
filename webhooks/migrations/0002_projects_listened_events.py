# Each project's `listened_events` (labeling 0019) filled in from the hooks it has.

from django.db import migrations


def fill(apps, schema_editor):
    Project = apps.get_model("labeling", "Project")
    Webhook = apps.get_model("webhooks", "Webhook")
    listened: dict[int, set[str]] = {}
    for project_id, events in Webhook.objects.filter(is_active=True).values_list(
        "project_id", "events"
    ):
        listened.setdefault(project_id, set()).update(events)
    for project_id, events in listened.items():
        Project.objects.filter(pk=project_id).update(listened_events=sorted(events))


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0019_project_listened_events"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
