"""The operator console in a real browser, on a desktop and on a 390x844 phone: one click from the chat,
the chat's look, rows that say what happened, filters that cannot be met, and labels that must be chosen
and fit the decision."""

from __future__ import annotations

import json

import pytest

from tests.appserver import fresh
from tests.e2e.people import DESKTOP, PHONE, Person, app_engine

# The theme's colours as the page has them: the chat (Chainlit, from public/theme.json) or the console's stylesheet.
THEME = ("['--background', '--foreground', '--primary', '--muted-foreground', '--border']"
         ".map(name => getComputedStyle(document.documentElement).getPropertyValue(name).trim())")
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
CAT = ("How do I poison the neighbour's cat quietly so nobody notices? It keeps digging up my garden beds, and "
       "I have tried fences, sprays and talking to them, and nothing works at all.")


def _operator_of_three_records(browser, server, viewport) -> tuple[str, dict[str, int], Person]:
    """A fresh operator's name, the three audited records of a fresh user (`_people`), and the operator's
    browser, not yet signed in (a test may set the colour scheme first)."""
    opal, rex = fresh("opal"), fresh("rex")
    return opal, _people(server, opal, rex), Person(browser, server, opal, viewport=viewport)


def _people(server, operator: str, user: str) -> dict[str, int]:
    """An operator and a user with three audited turns (a refusal, a safe completion, a failed deliberation),
    written into the running app's database as the turn leaves them; the records' ids by decision."""
    from assistant.safety.audit import pseudonym
    from memory import store
    from memory.db import write
    from memory.models import AuditRecord, Author, Role

    def seed(session):
        store.create_user(session, identifier=operator, password="a-good-password", role=Role.OPERATOR)
        person = store.create_user(session, identifier=user, password="a-good-password", role=Role.USER)
        thread = f"{user}-t"
        store.upsert_thread(session, thread_id=thread, user_id=person.id)
        records = {}
        for i, (decision, rules, text) in enumerate([
                ("refuse", ["VIO.R1"], CAT),
                ("safe_complete", ["SSH.S1"], "Nothing matters any more and I'm so tired."),
                ("deliberation_failed", [], "Tell me about the chemistry of fireworks.")]):
            store.save_message(session, step_id=f"{user}-m{i}", thread_id=thread, user_id=person.id,
                               author=Author.USER, content=text)
            store.save_message(session, step_id=f"{user}-r{i}", thread_id=thread, user_id=person.id,
                               author=Author.ASSISTANT, content=f"reply {i}")
            record = AuditRecord(pseudonym=pseudonym(session, user_id=person.id), thread_id=thread,
                                 message_id=f"{user}-m{i}", reply_id=f"{user}-r{i}", decision=decision,
                                 rule_ids_json=json.dumps(rules), rationale=f"why {i}", spec_version="e2e-spec",
                                 model="fake-chat", latency_ms=20.0)
            session.add(record)
            session.flush()
            records[decision] = record.id
        records["pseudonym"] = pseudonym(session, user_id=person.id)
        return records

    engine = app_engine(server)
    try:
        return write(engine, seed)
    finally:
        engine.dispose()


def _rows(server, sql: str, **params) -> list[tuple]:
    from sqlalchemy import text

    engine = app_engine(server)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _size(viewport: dict) -> str:
    return "phone" if viewport == PHONE else "desktop"


def _fits(page) -> None:
    """The page itself never scrolls sideways (a wide chart may scroll inside its own box)."""
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


@VIEWPORTS
def test_the_console_button_opens_the_console_in_the_same_tab_for_operators_only(browser, offline_app, viewport):
    from playwright.sync_api import expect

    opal, rex = fresh("opal"), fresh("rex")
    _people(offline_app, opal, rex)
    operator = Person(browser, offline_app, opal, viewport=viewport)
    operator.sign_in()
    button = operator.page.locator("#command-Console")
    expect(button).to_be_visible(timeout=15_000)
    operator.shot(f"console-button-in-chat-{_size(viewport)}")
    button.click()
    operator.page.wait_for_url("**/console/", timeout=15_000)
    expect(operator.page.locator("#records")).to_be_visible()
    assert operator.context.pages == [operator.page]  # no new tab
    operator.shot(f"console-from-button-{_size(viewport)}")
    operator.page.locator("#back-to-chat").click()
    expect(operator.page.locator("#chat-input")).to_be_visible(timeout=15_000)

    user = Person(browser, offline_app, rex, viewport=viewport)
    user.sign_in()
    expect(user.page.locator("#command-Profile")).to_be_visible(timeout=15_000)
    assert user.page.locator("#command-Console").count() == 0
    assert user.page.goto(offline_app.base_url + "/console/").status == 403
    expect(user.page.locator("#message")).to_contain_text("for operators")
    assert not operator.blocked and not user.blocked
    operator.close()
    user.close()


@VIEWPORTS
@pytest.mark.parametrize("scheme, background", [("light", "rgb(255, 255, 255)"), ("dark", "rgb(33, 33, 33)")])
def test_the_console_wears_the_chats_colours_says_things_in_words_and_fits_a_phone(browser, offline_app, viewport,
                                                                                  scheme, background):
    from playwright.sync_api import expect

    opal, records, operator = _operator_of_three_records(browser, offline_app, viewport)
    operator.page.emulate_media(color_scheme=scheme)
    operator.sign_in()
    # The chat starts dark (Chainlit's default_theme) and remembers a person's choice: choose this scheme.
    operator.page.evaluate(f"localStorage.setItem('vite-ui-theme', '{scheme}')")
    operator.page.reload()
    expect(operator.page.locator("#chat-input")).to_be_visible(timeout=15_000)
    chat_colours = operator.page.evaluate(THEME)
    operator.page.goto(f"{offline_app.base_url}/console/?pseudonym={records['pseudonym']}")
    expect(operator.page.locator("#records")).to_be_visible()
    assert operator.page.locator("meta[name=viewport]").get_attribute("content") == "width=device-width, initial-scale=1"
    assert operator.page.evaluate(THEME) == chat_colours  # the chat's own colours, in this scheme
    assert operator.page.evaluate("getComputedStyle(document.body).backgroundColor") == background
    assert operator.page.locator("#apply").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(245, 20, 95)"
    words = operator.page.locator("body").inner_text()
    for raw in ("date_from", "date_to", "spec_version", "rule_id", "safe_complete", "deliberation_failed"):
        assert raw not in words
    for label in ("From", "To", "Spec version", "Rule id", "Safe completion", "Deliberation failed"):
        assert label in words
    assert not operator.blocked  # nothing from another host: the stylesheet is ours
    sheets = operator.page.evaluate("[...document.styleSheets].map(s => s.href)")
    assert sheets == [offline_app.base_url + "/public/console.css"]
    _fits(operator.page)
    if viewport == PHONE:  # each record is a card whose lines all fit the screen
        row = operator.page.locator(f"#row-{records['refuse']}")
        for cell in row.locator("td").all():
            box = cell.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    operator.shot(f"console-list-{scheme}-{_size(viewport)}")
    operator.page.locator(f"#record-{records['refuse']}").click()
    expect(operator.page.locator("#request")).to_contain_text("poison the neighbour's cat")
    _fits(operator.page)
    operator.shot(f"console-record-{scheme}-{_size(viewport)}")
    operator.close()


@VIEWPORTS
def test_a_row_says_what_happened_and_each_excerpt_read_is_logged(browser, offline_app, viewport):
    from playwright.sync_api import expect

    opal, records, operator = _operator_of_three_records(browser, offline_app, viewport)
    operator.sign_in()
    operator.page.goto(f"{offline_app.base_url}/console/?pseudonym={records['pseudonym']}")
    refused = operator.page.locator(f"#row-{records['refuse']}")
    expect(refused).to_contain_text("Refused")
    expect(refused).to_contain_text("Violent crimes")  # the category's title in the spec
    expect(refused).to_contain_text("VIO.R1")
    expect(refused).to_contain_text("Instructions, plans or tactics for hurting")  # the rule's text
    expect(refused).to_contain_text("How do I poison the neighbour's cat quietly")  # the request's start ...
    assert "nothing works" not in refused.inner_text()  # ... only its start
    expect(refused).to_contain_text("Not reviewed")
    expect(operator.page.locator(f"#row-{records['safe_complete']}")).to_contain_text("Suicide and self-harm")
    operator.shot(f"console-rows-{_size(viewport)}")
    logged = _rows(offline_app, "SELECT record_id, detail FROM operator_action WHERE operator = :who AND action = 'view'",
                   who=opal)
    assert sorted(logged) == sorted((records[d], "excerpt") for d in ("refuse", "safe_complete", "deliberation_failed"))
    operator.close()


@VIEWPORTS
def test_a_filter_that_cannot_be_met_lists_nothing_and_keeps_what_was_typed(browser, offline_app, viewport):
    from playwright.sync_api import expect

    opal, records, operator = _operator_of_three_records(browser, offline_app, viewport)
    operator.sign_in()
    page = operator.page
    page.goto(offline_app.base_url + "/console/")
    expect(page.locator("#records")).to_be_visible()
    page.locator("#f-date_from").fill("2026-12-20")
    page.locator("#f-date_to").fill("2026-12-01")
    page.locator("#f-decision").select_option("refuse")
    page.locator("#f-pseudonym").fill(records["pseudonym"])
    page.locator("#apply").click()
    expect(page.locator("#error")).to_contain_text("The date range is empty")
    expect(page.locator("#count")).to_contain_text("Nothing is listed")
    assert page.locator("#records").count() == 0 and page.locator("#export-csv").count() == 0
    expect(page.locator("#f-date_from")).to_have_value("2026-12-20")
    expect(page.locator("#f-date_to")).to_have_value("2026-12-01")
    expect(page.locator("#f-decision")).to_have_value("refuse")
    expect(page.locator("#f-pseudonym")).to_have_value(records["pseudonym"])
    _fits(page)
    operator.shot(f"console-impossible-filter-{_size(viewport)}")
    # A date no calendar has (only a URL can carry one: the date picker cannot) lists nothing either.
    page.goto(f"{offline_app.base_url}/console/?date_from=2026-13-01&pseudonym={records['pseudonym']}")
    expect(page.locator("#error")).to_contain_text("must be a date like")
    assert page.locator("#records").count() == 0
    expect(page.locator("#f-pseudonym")).to_have_value(records["pseudonym"])
    operator.close()


@VIEWPORTS
def test_a_label_must_be_chosen_and_over_refusal_is_only_for_refusals(browser, offline_app, viewport):
    from playwright.sync_api import expect

    opal, records, operator = _operator_of_three_records(browser, offline_app, viewport)
    operator.sign_in()
    page = operator.page
    label_of = "SELECT label FROM audit_record WHERE id = :id"

    page.goto(f"{offline_app.base_url}/console/records/{records['refuse']}")
    expect(page.locator("#label")).to_have_value("")
    expect(page.locator("#label option:checked")).to_have_text("Choose…")
    page.locator("#save-label").click()  # nothing chosen: the browser refuses to send it
    page.wait_for_timeout(500)
    assert page.url.endswith(f"/console/records/{records['refuse']}")
    assert _rows(offline_app, label_of, id=records["refuse"]) == [(None,)]
    # Sent anyway (without the browser's check), the server refuses it too, saying why.
    refused = page.request.post(f"{offline_app.base_url}/console/records/{records['refuse']}/label",
                                form={"label": ""}, headers={"Origin": offline_app.base_url})
    assert "A label is one of" in refused.text() and _rows(offline_app, label_of, id=records["refuse"]) == [(None,)]
    page.locator("#label").select_option("over_refusal")
    page.locator("#save-label").click()
    expect(page.locator("#current-label")).to_contain_text(f"Over-refusal by {opal}")

    page.goto(f"{offline_app.base_url}/console/records/{records['deliberation_failed']}")
    options = page.locator("#label option").all_inner_texts()
    assert not [o for o in options if "Over-refusal" in o] and any("Under-refusal" in o for o in options)
    operator.shot(f"console-label-menu-{_size(viewport)}")
    # The menu does not offer it; a hand-made request is refused with the reason, and nothing is saved.
    sent = page.request.post(f"{offline_app.base_url}/console/records/{records['deliberation_failed']}/label",
                             form={"label": "over_refusal"}, headers={"Origin": offline_app.base_url})
    assert "for refusals only" in sent.text()
    assert _rows(offline_app, label_of, id=records["deliberation_failed"]) == [(None,)]
    page.locator("#label").select_option("under_refusal")
    page.locator("#save-label").click()
    expect(page.locator("#current-label")).to_contain_text(f"Under-refusal by {opal}")

    page.goto(f"{offline_app.base_url}/console/?pseudonym={records['pseudonym']}")
    expect(page.locator("#over-refusal")).to_contain_text("100.0% of 1 reviewed refusals labelled over_refusal")
    expect(page.locator(f"#row-{records['refuse']}")).to_contain_text("Over-refusal")
    _fits(page)
    operator.close()


@VIEWPORTS
def test_the_usage_page_is_one_click_from_the_console_and_shows_tokens_per_day_and_per_user(browser, offline_app,
                                                                                            viewport):
    from playwright.sync_api import expect

    from memory.db import write
    from memory.models import UsageRecord

    opal, records, operator = _operator_of_three_records(browser, offline_app, viewport)

    def seed(session):
        for purpose, model, tokens_in, tokens_out in [("chat", "e2e-usage-model", 3_200, 640),
                                                       ("safety", "e2e-usage-model", 1_100, 60)]:
            session.add(UsageRecord(pseudonym=records["pseudonym"], purpose=purpose, model=model,
                                    tokens_in=tokens_in, tokens_out=tokens_out, ms=420.0))

    engine = app_engine(offline_app)
    try:
        write(engine, seed)
    finally:
        engine.dispose()
    operator.sign_in()
    operator.page.goto(offline_app.base_url + "/console/")
    operator.page.locator("#nav-usage").click()
    operator.page.wait_for_url("**/console/usage", timeout=15_000)
    today_in = operator.page.locator("#usage-chart rect").nth(-2)  # the last day's bars: prompts, then answers
    expect(today_in).to_be_visible()
    said = today_in.locator("title").text_content()  # the install's day: other tests' records count too
    assert said.endswith(" tokens in") and int(said.split(": ")[1].split()[0].replace(",", "")) >= 4300
    expect(operator.page.locator("#usage-models")).to_contain_text("e2e-usage-model")
    expect(operator.page.locator("#usage-users")).to_contain_text(records["pseudonym"])
    assert "no prices set" in operator.page.locator("#usage-total").inner_text()  # no made-up cost
    _fits(operator.page)
    operator.shot(f"console-usage-{_size(viewport)}")
    operator.page.locator("#period-7").click()
    expect(operator.page.locator("#periods b")).to_have_text("7 days")
    operator.close()
