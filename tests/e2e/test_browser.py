"""End-to-end in a real browser: what a user does in Airflow's UI with the provider.

Chromium (the Debian package, driven by Playwright) on the e2e deployment's API server, one step
per test, in this order, on one logged-in page: sign in; create a ``modzy`` connection through
the form; press its Test button; trigger ``jobwait_e2e_browser`` and see its wait Deferred; open
the wait's "Job" link; find the wait's progress line in its task log; mark the other wait failed
and see its job ``CANCELED`` on the service. Each step leaves a screenshot in ``SCREENSHOTS``
(``build/e2e-browser/`` by default). A step that needs what an earlier one made is skipped when
that one failed: the failure is reported once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Route, expect, sync_playwright

from tests.e2e.browser import SCREENSHOTS, UI_TIMEOUT_S, AirflowUI, Screenshots, chromium_path, wait_visible
from tests.e2e.harness import API_KEY, Deployment, HarnessError, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DAG_ID = "jobwait_e2e_browser"
#: The connection the DAG's tasks use (``tests/e2e/dags/jobwait_browser.py``), made in the form.
CONN_ID = "modzy_browser"
#: The job page the "Job" link opens: the reference service's job JSON.
JOB_URL_TEMPLATE = "{base_url}/api/jobs/{job_id}"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: From trigger to a wait Deferred: two worker slots, DAG parsing, a submit, a first poll.
DEFERRED_TIMEOUT_S = 180.0


@dataclass
class Flow:
    """What the steps share: the signed-in UI, and what each step made for the next ones.

    :param deployment: The e2e deployment.
    :param ui: The UI, signed in by the first step.
    :param shots: Where each step's screenshot goes.
    """

    deployment: Deployment
    ui: AirflowUI
    shots: Screenshots
    done: set[str] = field(default_factory=set)
    run_id: str = ""
    #: Job id of each wait (``wait_first``, ``wait_second``), read from its Job link.
    jobs: dict[str, str] = field(default_factory=dict)

    def needs(self, *steps: str) -> None:
        """Skip this step when one it builds on did not pass (its failure is reported already)."""
        missing = [step for step in steps if step not in self.done]
        if missing:
            pytest.skip(f"needs the earlier step(s) {', '.join(missing)}, which did not pass")


@pytest.fixture(scope="module")
def flow(deployment: Deployment) -> Iterator[Flow]:
    """A headless Chromium on the deployment's UI; at the end, the run's jobs end and the run too."""
    # No sandbox: Chromium's refuses to run as root (CI runs as root) and needs user namespaces that
    # containers often lack; the browser only loads this deployment's own pages. /dev/shm is small
    # in containers: Chromium then uses /tmp.
    args = ["--no-sandbox", "--disable-dev-shm-usage"]
    service = deployment.service
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(UI_TIMEOUT_S * 1000)
        expect.set_options(timeout=UI_TIMEOUT_S * 1000)

        # The reference service has no sign-in page: its job pages take the API key in a header.
        # A user of the real service opens them signed in there; the browser sends the key here.
        def with_key(route: Route) -> None:
            route.continue_(headers={**route.request.headers, "authorization": f"ApiKey {API_KEY}"})

        context.route(re.compile(rf"^{re.escape(service.base_url)}/"), with_key)
        shared = Flow(deployment, AirflowUI(context.new_page(), deployment.airflow.base_url), Screenshots(SCREENSHOTS))
        try:
            yield shared
        finally:
            try:
                end_run(deployment, shared.run_id)
            finally:
                browser.close()


def end_run(deployment: Deployment, run_id: str) -> None:
    """End the run's jobs on the service now and wait for the run, so no later test sees them."""
    if not run_id:
        return
    ids = [job for task in ("submit_first", "submit_second") if (job := submitted(deployment, run_id, task))]
    if ids:
        finish = f"{deployment.service.base_url}/api/_test/finish"
        resp = deployment.service.session.post(finish, json={"identifiers": ids, "status": "COMPLETED"}, timeout=10)
        resp.raise_for_status()
    deployment.airflow.wait_run(DAG_ID, run_id, timeout=300, on_poll=deployment.check_alive)


def submitted(deployment: Deployment, run_id: str, task_id: str) -> str | None:
    """The job id a submit pushed, ``None`` when it pushed none (yet)."""
    try:
        return str(deployment.airflow.xcom(DAG_ID, run_id, task_id))
    except HarnessError:
        return None


def test_sign_in(flow: Flow) -> None:
    """The simple auth manager's form, with the password the harness wrote."""
    flow.ui.login(flow.deployment.airflow.username, flow.deployment.password)
    flow.shots.take(flow.ui.page, "signed-in")
    flow.done.add("sign_in")


def test_create_a_modzy_connection_through_the_form(flow: Flow) -> None:
    """Admin → Connections → Add Connection, type Modzy: API URL, API key, Job page URL template."""
    flow.needs("sign_in")
    ui, page = flow.ui, flow.ui.page
    service_url = flow.deployment.service.base_url
    dialog = ui.open_add_connection()
    dialog.get_by_label("Connection ID").fill(CONN_ID)
    ui.choose_connection_type(dialog, "Modzy")
    # Our relabelled standard fields (Host → API URL, Password → API key).
    dialog.get_by_label("API URL").fill(f"{service_url}/api")
    dialog.get_by_label("API key").fill(API_KEY)
    flow.shots.take(page, "connection-form")
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    ui.extra_field(dialog, "job_url_template").fill(JOB_URL_TEMPLATE)
    flow.shots.take(page, "connection-form-extra-fields")
    ui.save_connection(dialog)
    expect(ui.connection_row(CONN_ID)).to_contain_text(f"{service_url}/api")
    flow.shots.take(page, "connection-list")

    stored = flow.deployment.airflow.get(f"/connections/{CONN_ID}")
    assert stored["conn_type"] == "modzy" and stored["host"] == f"{service_url}/api", stored
    assert json.loads(stored["extra"])["job_url_template"] == JOB_URL_TEMPLATE, stored
    flow.done.add("connection")


def test_the_connection_test_button_says_connected(flow: Flow) -> None:
    """The connection list's Test button: the UI shows our hook's message."""
    flow.needs("connection")
    ui, page = flow.ui, flow.ui.page
    said = f"connected to Modzy at {flow.deployment.service.base_url}"
    with page.expect_response(lambda resp: resp.url.endswith("/api/v2/connections/test")) as answer:
        ui.connection_row(CONN_ID).get_by_role("button", name="Test Connection").click()
    # What the UI got, whatever it shows: the notification below is gone after 5 s.
    assert answer.value.status == 200, answer.value.text()
    body = answer.value.json()
    assert body["status"] is True and body["message"].startswith(said), body
    result = ui.toast("Test Connection")
    expect(result).to_be_visible()
    flow.shots.take(page, "connection-test")
    expect(result).to_contain_text("Test Connection Successful")
    expect(result).to_contain_text(said)


def test_trigger_the_dag_and_see_the_wait_deferred(flow: Flow) -> None:
    """The DAG page's Trigger; the first wait's page shows it Deferred."""
    flow.needs("connection")
    ui = flow.ui
    flow.deployment.airflow.wait_dag(DAG_ID, timeout=180, check=flow.deployment.check_alive)
    flow.run_id = ui.trigger(DAG_ID)
    ui.page.goto(ui.task_url(DAG_ID, flow.run_id, "wait_first", "details"))
    wait_visible(ui.page, ui.state_badge("Deferred"), "wait_first Deferred", DEFERRED_TIMEOUT_S)
    flow.done.add("deferred")


def test_the_job_link_opens_the_job_page(flow: Flow) -> None:
    """The deferred wait's "Job" link (Extra Links) opens the job's page on the service."""
    flow.needs("deferred")
    ui, page = flow.ui, flow.ui.page
    link = ui.job_link()
    service_url = re.escape(flow.deployment.service.base_url)
    expect(link).to_have_attribute("href", re.compile(rf"^{service_url}/api/jobs/{UUID}$"))
    flow.shots.take(page, "deferred-wait-job-link")
    job_id = str(link.get_attribute("href")).rsplit("/", 1)[1]
    flow.jobs["wait_first"] = job_id

    with page.context.expect_page() as opened:
        link.click()  # target=_blank: a new tab
    job_page = opened.value
    job_page.wait_for_load_state()
    # Chromium shows a JSON answer as its text in a <pre> (with a pretty-print switch above it).
    body = job_page.locator("pre").first
    expect(body).to_contain_text(job_id)
    flow.shots.take(job_page, "job-page")
    shown = json.loads(body.inner_text())
    job_page.close()
    assert shown["jobIdentifier"] == job_id
    assert shown["status"] in ("SUBMITTED", "IN_PROGRESS"), shown
    assert flow.deployment.service.job(job_id)["model"]["identifier"] == "sentiment"
    flow.done.add("job_link")


def test_the_task_log_shows_the_progress_line(flow: Flow) -> None:
    """The wait's Logs tab shows a progress line of its job (one every 5 s in this DAG)."""
    flow.needs("job_link")
    ui, page = flow.ui, flow.ui.page
    job_id = flow.jobs["wait_first"]
    page.goto(ui.task_url(DAG_ID, flow.run_id, "wait_first"))
    line = page.get_by_text(re.compile(rf"inference job {job_id} is IN_PROGRESS after \d+s"))
    try:
        wait_visible(page, line, "the progress line", timeout=90)
    finally:
        flow.shots.take(page, "task-log")


def test_marking_the_other_wait_failed_cancels_its_job(flow: Flow, record: Any) -> None:
    """Mark ``wait_second`` failed from its page: the service shows its job ``CANCELED``."""
    flow.needs("deferred")
    ui, page = flow.ui, flow.ui.page
    page.goto(ui.task_url(DAG_ID, flow.run_id, "wait_second", "details"))
    wait_visible(page, ui.state_badge("Deferred"), "wait_second Deferred", DEFERRED_TIMEOUT_S)
    job_id = str(ui.job_link().get_attribute("href")).rsplit("/", 1)[1]
    flow.jobs["wait_second"] = job_id
    assert flow.deployment.service.job(job_id)["status"] in ("SUBMITTED", "IN_PROGRESS")

    dialog = ui.mark_task("Failed")
    flow.shots.take(page, "mark-failed-dialog")
    dialog.get_by_role("button", name="Confirm").click()
    marked = time.monotonic()
    expect(dialog).to_be_hidden()
    expect(ui.state_badge("Failed")).to_be_visible()
    flow.shots.take(page, "marked-failed")

    status = wait_for(
        f"job {job_id} to be CANCELED",
        lambda: (job := flow.deployment.service.job(job_id))["status"] == "CANCELED" and job,
        timeout=60,
    )
    record("browser_mark_failed_to_canceled_s", round(time.monotonic() - marked, 1))
    assert status["jobIdentifier"] == job_id
