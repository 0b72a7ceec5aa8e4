"""python manage.py load_demo: the demo project with real photographs and demo users (idempotent)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from active_selection.services import create_page_tasks
from labeling.demo import demo_users, load_demo


class Command(BaseCommand):
    help = (
        "Create the demo project, its queries and items (with real images) and one user per role."
    )

    def handle(self, *args, **options):
        project, created = load_demo()
        pages = create_page_tasks(project=project)
        user_model = get_user_model()
        admin, admin_created = user_model.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if admin_created:
            admin.set_password("pagewise-admin")
            admin.save()
        verb = "Created" if created else "Kept the existing"
        self.stdout.write(
            f"{verb} demo project '{project.slug}': {project.queries.count()} queries, "
            f"{project.items.count()} items; {pages} new candidate pages to grade."
        )
        self.stdout.write("Demo accounts (username / password / role):")
        self.stdout.write("  admin / pagewise-admin / administrator (Django admin)")
        for user in demo_users():
            self.stdout.write(f"  {user['username']} / {user['password']} / {user['role']}")
