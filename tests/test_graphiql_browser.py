"""GraphiQL as a developer uses it: typed into, run and read in headless Chromium, offline."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from app.config import Settings
from app.server import create_app
from tests.api_client import ApiClient
from tests.conftest import make_token
from tests.factories import on_sale_event

# One browser for the module (starting Playwright and Chromium takes about a second), so the
# tests and their fixtures share the module's event loop; each test still gets its own app,
# database and browser context.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


def find_chromium() -> str | None:
    """$CHROMIUM if set (and executable), else a chromium on PATH; never a downloaded browser."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = find_chromium()
MISSING = (
    f"CHROMIUM={os.environ['CHROMIUM']} is not an executable" if os.environ.get("CHROMIUM")
    else "no chromium or chromium-browser on PATH"
)
# Where a browser is required (REQUIRE_BROWSER=1) its absence fails these tests, in the
# `browser` fixture, so the rest of the suite still runs and reports.
if CHROMIUM is None and os.environ.get("REQUIRE_BROWSER") != "1":
    pytest.skip("no Chromium: apt-get install chromium to run the GraphiQL browser test", allow_module_level=True)

# No network beyond 127.0.0.1: nothing the browser does on its own may reach out.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 15_000
ORGANIZER = make_token("org-graphiql", "organizer")


class GraphiQLPage:
    """One GraphiQL tab, with a record of everything it fetched and every error it reported."""

    def __init__(self, page: Page, origin: str, screenshots: Path) -> None:
        self.page, self.origin, self.screenshots = page, origin, screenshots
        self.requests: list[str] = []
        self.websockets: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("websocket", lambda ws: self.websockets.append(ws.url))
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: self.problems.append(f"failed: {request.url} {request.failure}"))
        page.on("response", self._on_response)

    def _on_response(self, response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def _on_console(self, message) -> None:
        # Chromium asks every origin for /favicon.ico by itself; that is the browser's
        # request, not the page's, and the app has no icon to give.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.problems.append(f"console: {message.text} at {message.location.get('url')}")

    async def open(self) -> None:
        await self.page.goto(f"{self.origin}/graphql")
        await self.page.locator(".graphiql-query-editor .CodeMirror").wait_for(timeout=WAIT_MS)

    async def type_query(self, text: str) -> None:
        """Replace the query editor's document by typing `text`, as a person would."""
        await self.page.locator(".graphiql-query-editor .CodeMirror").click()
        await self.page.keyboard.press("Control+A")
        await self.page.keyboard.press("Delete")
        await self.page.keyboard.type(text)
        # CodeMirror auto-closes brackets and quotes (typing a closer steps over it): check
        # that what the editor holds is exactly what was meant.
        assert await self._editor_value(".graphiql-query-editor .CodeMirror") == text

    async def run_with_keyboard(self) -> None:
        await self.page.keyboard.press("Control+Enter")

    async def run_with_button(self) -> None:
        await self.page.locator(".graphiql-execute-button").click()

    async def result(self) -> str:
        """The result pane's text, once the run has put something there.

        Read from the pane's CodeMirror document: CodeMirror draws only the lines in view.
        """
        pane = ".result-window .CodeMirror"
        try:
            await self.page.wait_for_function(
                "selector => document.querySelector(selector).CodeMirror.getValue().trim() !== ''",
                arg=pane, timeout=WAIT_MS,
            )
        except PlaywrightError:
            shot = self.screenshots / "graphiql.png"
            await self.page.screenshot(path=shot)
            raise AssertionError(f"the result pane stayed empty; screenshot at {shot}; {self.problems}") from None
        return await self._editor_value(pane)

    async def headers_tab_text(self) -> str:
        """Open the Headers tab and return what its editor shows (line numbers included)."""
        await self.page.get_by_role("button", name="Headers", exact=True).click()
        shown = self.page.locator(".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror-code")
        await shown.wait_for(state="visible", timeout=WAIT_MS)
        return await shown.inner_text()

    def assert_offline_and_clean(self) -> None:
        """Everything came from the app's own origin, and nothing failed or logged an error."""
        outside = [
            url for url in self.requests
            if not url.startswith((f"{self.origin}/", "data:", "blob:"))
        ]
        assert not outside, f"requests beyond the app's origin: {outside}"
        ws_origin = self.origin.replace("http://", "ws://", 1)
        assert all(url.startswith(f"{ws_origin}/") for url in self.websockets), self.websockets
        assert not self.problems, self.problems

    async def _editor_value(self, selector: str) -> str:
        return await self.page.evaluate("selector => document.querySelector(selector).CodeMirror.getValue()", selector)


@pytest_asyncio.fixture(loop_scope="module")
async def origin(settings: Settings) -> AsyncIterator[str]:
    """The app served on a real 127.0.0.1 port, its GraphiQL pre-filled with an organizer's token."""
    app = create_app(settings, graphiql_headers={"Authorization": f"Bearer {ORGANIZER}"}, sweep=False)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # port 0: the OS picks a free one, with no race
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.fail(f"REQUIRE_BROWSER=1 but {MISSING}", pytrace=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(loop_scope="module")
async def graphiql(browser: Browser, origin: str, tmp_path: Path) -> AsyncIterator[GraphiQLPage]:
    context = await browser.new_context()
    page = GraphiQLPage(await context.new_page(), origin, tmp_path)
    await page.open()
    yield page
    await context.close()


async def test_the_page_loads_with_no_outside_asset(graphiql: GraphiQLPage):
    assert "query UpcomingEvents" in await graphiql.page.locator(".graphiql-query-editor").inner_text()
    # The docs list the root types only once the schema has come back by introspection.
    await graphiql.page.get_by_role("button", name="Show Documentation Explorer").click()
    docs = graphiql.page.locator(".graphiql-doc-explorer")
    await docs.get_by_text("subscription: Subscription").wait_for(timeout=WAIT_MS)
    assert any(url.endswith("/graphiql/static/graphiql.min.js") for url in graphiql.requests)
    graphiql.assert_offline_and_clean()


async def test_a_typed_anonymous_query_runs(graphiql: GraphiQLPage):
    # Run at once after typing: the old document's operation name (UpcomingEvents) must not go with it.
    await graphiql.type_query("{ events(first: 1) { pageInfo { hasNextPage } } }")
    await graphiql.run_with_keyboard()
    text = await graphiql.result()
    assert '"data"' in text, text
    assert json.loads(text) == {"data": {"events": {"pageInfo": {"hasNextPage": False}}}}
    graphiql.assert_offline_and_clean()


async def test_a_mutation_runs_with_the_dev_token_from_the_headers_tab(graphiql: GraphiQLPage):
    assert f'"Authorization": "Bearer {ORGANIZER}"' in await graphiql.headers_tab_text()
    await graphiql.type_query(
        'mutation { createVenue(input: {name: "Browser Hall", city: "Leeds", country: "GB", '
        'timezone: "Europe/London"}) { venue { id name city } errors { code message } } }'
    )
    await graphiql.run_with_button()
    text = await graphiql.result()
    assert '"errors": []' in text, text
    venue = json.loads(text)["data"]["createVenue"]["venue"]
    assert venue["id"] and (venue["name"], venue["city"]) == ("Browser Hall", "Leeds")
    graphiql.assert_offline_and_clean()


async def test_a_subscription_shows_its_first_message(graphiql: GraphiQLPage):
    async with aiohttp.ClientSession(base_url=graphiql.origin) as http:  # all ApiClient needs is post()
        event, _ = await on_sale_event(ApiClient(http, app=None), ORGANIZER)
    await graphiql.type_query(
        f'subscription {{ eventInventory(eventId: "{event["id"]}") {{ eventId ticketsRemaining '
        "ticketTypes { type quantityRemaining } } }"
    )
    await graphiql.run_with_keyboard()
    text = await graphiql.result()
    assert '"data"' in text, text
    inventory = json.loads(text)["data"]["eventInventory"]
    assert inventory == {
        "eventId": event["id"], "ticketsRemaining": 100,
        "ticketTypes": [{"type": "GENERAL", "quantityRemaining": 100}],
    }
    # It came over graphql-transport-ws, not as an HTTP request.
    assert graphiql.websockets == [graphiql.origin.replace("http://", "ws://", 1) + "/graphql"]
    graphiql.assert_offline_and_clean()
