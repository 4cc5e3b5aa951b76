"""Airflow 3.3's web UI driven by a real Chromium (Playwright), for ``test_browser.py``.

Playwright drives the Debian package ``chromium`` (``executable_path``): nothing is downloaded
(``playwright install`` is never run). Every locator is a role, a visible text, a label or a
``data-testid`` that the UI itself sets; every wait is an explicit one with a deadline (Playwright's
auto-waiting locators and ``expect``), never a fixed sleep.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote, unquote

from playwright.sync_api import BrowserContext, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.harness import REPO, HarnessError

#: Where the screenshots go: kept after the run (``build/`` is in .gitignore, CI's clone keeps it).
SCREENSHOTS = Path(os.environ.get("JOBWAIT_E2E_SCREENSHOTS", REPO / "build" / "e2e-browser"))
#: One UI action or assertion on a loaded 2-core machine (a liveness bound, not a pace).
UI_TIMEOUT_S = 60.0
#: Names the Debian package installs the browser under (``chromium``), and other distributions'.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The system Chromium (``JOBWAIT_CHROMIUM`` overrides); ``HarnessError`` naming the fix if none."""
    override = os.environ.get("JOBWAIT_CHROMIUM")
    if override:
        return override
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise HarnessError(
        "Chromium not found; install the Debian package: apt-get install chromium "
        "(make test does this when it is missing)"
    )


class Screenshots:
    """Numbered screenshots of the steps, in ``folder`` (emptied first, so it holds one run).

    :param folder: Where the PNGs go.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.count = 0

    def take(self, page: Page, name: str, locator: Locator | None = None) -> Path:
        """Save ``NN-name.png``: the whole viewport, or only ``locator`` (e.g. a dialog).

        :param page: The page to take.
        :param name: The step, in the file name.
        :param locator: Only this element, when given.
        """
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        if locator is not None:
            locator.screenshot(path=str(path), animations="disabled")
        else:
            page.screenshot(path=str(path), animations="disabled")
        return path


def wait_visible(page: Page, locator: Locator, what: str, timeout: float = UI_TIMEOUT_S, every: float = 20.0) -> None:
    """Wait until ``locator`` is visible, reloading ``page`` every ``every`` seconds meanwhile.

    The UI polls what changes (a task's state, a deferred task's log) by itself; the reloads only
    guard against a view that stopped updating, so a missed refresh cannot fail the test.

    :param page: The page to reload between tries.
    :param locator: What must become visible (its first match).
    :param what: For the error message.
    :param timeout: Seconds in all (a liveness bound).
    :param every: Seconds one look waits before the page is reloaded.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        look = max(1.0, min(every, deadline - time.monotonic()))
        try:
            expect(locator.first).to_be_visible(timeout=look * 1000)
            return
        except (AssertionError, PlaywrightError) as err:
            last = err
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what} in the UI (last: {last})")
        page.reload(wait_until="domcontentloaded")


class AirflowUI:
    """The pages of one deployment's UI, as one logged-in user sees them.

    :param page: A page of a context that is not logged in yet.
    :param base_url: The API server, e.g. ``http://127.0.0.1:8080``.
    """

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")

    @property
    def context(self) -> BrowserContext:
        return self.page.context

    def login(self, username: str, password: str) -> None:
        """The simple auth manager's sign-in form, then the home page."""
        page = self.page
        page.goto(f"{self.base_url}/")
        # Not logged in: the UI sends us to /auth/login.
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        # exact: the dashboard also links "Failed Dags", "Running Dags" and "Active Dags" once
        # any DAG has run, and a role name matches as a substring by default.
        expect(page.get_by_role("link", name="Dags", exact=True)).to_be_visible()

    # -- connections

    def open_add_connection(self) -> Locator:
        """Admin → Connections → Add Connection; return the form's dialog."""
        page = self.page
        page.get_by_role("button", name="Admin").click()
        page.get_by_role("menuitem", name="Connections").click()
        expect(page).to_have_url(re.compile(r"/connections$"))
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
        return dialog

    def choose_connection_type(self, dialog: Locator, label: str) -> None:
        """Pick ``label`` in the form's type list (a searchable combobox)."""
        dialog.get_by_role("combobox", name="Connection Type").fill(label)
        self.page.get_by_role("option", name=label, exact=True).click()

    @staticmethod
    def extra_field(dialog: Locator, key: str) -> Locator:
        """The input of a provider extra field (``conn-fields`` key).

        Its ``<label>`` points at another id than the input's in Airflow 3.3, so the label does not
        find it; the form names each such input ``element_<key>``.
        """
        return dialog.locator(f"input[name='element_{key}']")

    def save_connection(self, dialog: Locator) -> None:
        """Save the form; wait until the dialog is gone and the UI says it was created."""
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()
        expect(self.toast("Create Connection Request Submitted")).to_be_visible()

    def connection_row(self, conn_id: str) -> Locator:
        return self.page.get_by_role("row").filter(has=self.page.get_by_role("cell", name=conn_id, exact=True))

    def toast(self, title: str) -> Locator:
        """A notification (Chakra toast, ``role=status``) with this title."""
        return self.page.get_by_role("status").filter(has_text=title)

    # -- DAGs, runs, task instances

    def trigger(self, dag_id: str) -> str:
        """The DAG page's Trigger button, then Trigger in its form; return the new run's id.

        The id is read from the page the UI goes to (``/dags/<dag>/runs/<run id>``).
        """
        page = self.page
        page.goto(f"{self.base_url}/dags/{dag_id}")
        page.get_by_test_id("trigger-dag-button").click()
        page.get_by_test_id("trigger-dag-submit").click()
        expect(page).to_have_url(re.compile(rf"/dags/{re.escape(dag_id)}/runs/[^/]+$"))
        return unquote(page.url.rsplit("/runs/", 1)[1].split("?")[0])

    def task_url(self, dag_id: str, run_id: str, task_id: str, tab: str = "") -> str:
        """A task instance's page (``tab``: ``""`` for Logs, ``details``...)."""
        url = f"{self.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{task_id}"
        return f"{url}/{tab}" if tab else url

    def state_badge(self, state: str) -> Locator:
        """The task instance header's state badge (e.g. ``Deferred``)."""
        return self.page.get_by_test_id("state-badge").filter(has_text=re.compile(rf"^\s*{state}\s*$"))

    def job_link(self) -> Locator:
        """The "Job" button of the task's Extra Links (Details tab): an ``<a>`` to the job page."""
        return self.page.get_by_role("link", name="Job", exact=True)

    def mark_task(self, state: str) -> Locator:
        """Mark the open task instance ``Failed``/``Success``: menu, then the dialog's Confirm.

        :return: The confirmation dialog (hidden once the UI accepted the change).
        """
        page = self.page
        page.get_by_role("button", name="Mark Task Instance as...").click()
        page.get_by_role("menuitem", name=state, exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text(f"Mark Task Instance as {state.lower()}")).to_be_visible()
        return dialog
