"""schemathesis against the OpenAPI schema: every documented operation, called with generated
input as a project lead (who may call all of them), never answers 500. Bounded examples in CI
(PAGEWISE_FUZZ_EXAMPLES)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from labeling.models import Membership, Project

from .task_factories import make_compare_task, make_page_task

EXAMPLES = int(os.environ.get("PAGEWISE_FUZZ_EXAMPLES", 40)) // 4 or 1


def _load_schema():
    import json

    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from config.wsgi import application

    # The schema endpoint wants a signed-in user, and collection has no database: generate the
    # same document the endpoint serves, then call the application itself.
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(document)))
    loaded.app = application
    return loaded


schema = _load_schema()


@pytest.fixture
def lead_token(db, make_user):
    project = Project.objects.create(slug="p", name="Fuzzed", modalities=["text", "image"])
    user = make_user("fuzz-lead")
    Membership.objects.create(project=project, user=user, role="lead")
    make_page_task(project)
    make_compare_task(project)
    return Token.objects.create(user=user).key


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.django_db(transaction=True)
def test_no_documented_operation_answers_500(case, lead_token):
    if "{slug}" in case.path:
        case.path_parameters = {**(case.path_parameters or {}), "slug": "p"}
    response = case.call(headers={"Authorization": f"Token {lead_token}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
