"""The regulator's console in a real browser: proofs and signatures checked by the page
itself (verify.js, WebCrypto), so a tampered answer from the gateway is caught there."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import rfc8785
from playwright.sync_api import Page, Route

from conftest import Running
from dataauth.audit.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion

BODY = {
    "purpose": "credit",
    "subjects": [{"key": "440106199001010011", "claims": {"name": "张三"}}],
}


def covered(gateway: Running, index: int) -> dict:
    """The latest signed head, once it covers entry ``index``."""
    for _ in range(200):
        head = httpx.get(f"{gateway.url}/v1/audit/tree-head")
        if head.status_code == 200 and head.json()["size"] > index:
            return head.json()
        time.sleep(0.05)
    raise AssertionError(f"no head covered entry {index}")


def call(gateway: Running, operator: str, body: dict | None = None) -> int:
    token = gateway.token(operator)
    answer = httpx.post(f"{gateway.url}/v1/verify/identity-match", json=body or BODY,
                        headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code in (200, 403, 422), answer.text
    return answer.json().get("audit", {}).get("entry", -1)


@pytest.fixture(scope="module")
def traffic(console_gateway: Running) -> dict[str, int]:
    """Entries of two operators (demo-insurer's denied: its licence has no credit), a
    rejected request, and two heads apart."""
    bank = call(console_gateway, "demo-bank")
    first = covered(console_gateway, bank)["size"]
    insurer = call(console_gateway, "demo-insurer")
    call(console_gateway, "demo-bank", {"purpose": 1})
    last = call(console_gateway, "demo-bank")
    second = covered(console_gateway, last)["size"]
    assert second > first
    return {"bank": bank, "insurer": insurer, "first": first, "second": second}


@pytest.fixture
def regulator(page: Page, sign_in) -> Page:
    sign_in(page, "cac-regulator", roles=("regulator",))
    return page


def open_section(page: Page, gateway: Running, section: str) -> None:
    page.goto(f"{gateway.url}/console#/regulator/{section}")
    page.wait_for_selector(f"#reg-{section.split('/')[0]}")


def steps(page: Page) -> dict[str, str]:
    page.wait_for_selector("#verdict")
    return {
        item.get_attribute("data-step"): item.get_attribute("data-ok")
        for item in page.locator("li[data-step]").all()
    }


def test_an_entry_is_verified_in_the_page(regulator: Page, console_gateway, traffic, screenshot):
    open_section(regulator, console_gateway, f"entry/{traffic['bank']}")
    assert steps(regulator) == {
        "entry": "true",
        "leaf": "true",
        "path": "true",
        "signature": "true",
    }
    assert regulator.locator("#verdict").get_attribute("data-ok") == "true"
    text = regulator.locator("#reg-entry").inner_text()
    assert "Ed25519 signature verified with WebCrypto" in text
    screenshot(regulator, "regulator-entry")


def test_an_altered_entry_fails_in_the_page(regulator: Page, console_gateway, traffic, screenshot):
    """The gateway's own answer is altered on its way (one byte of the entry): only the
    page's own hashing can notice."""
    index = traffic["bank"]

    def alter(route: Route) -> None:
        response = route.fetch()
        body = response.body().replace(b'"purpose":"credit"', b'"purpose":"cred1t"', 1)
        assert body != response.body()
        route.fulfill(response=response, body=body)

    regulator.route(f"**/v1/audit/entries/{index}", alter)
    open_section(regulator, console_gateway, f"entry/{index}")
    found = steps(regulator)
    assert found["leaf"] == "false" and found["path"] == "false"
    assert regulator.locator("#verdict").get_attribute("data-ok") == "false"
    assert "FAILED" in regulator.locator("#verdict").inner_text()
    screenshot(regulator, "regulator-entry-altered")


def test_an_altered_signature_fails_in_the_page(regulator: Page, console_gateway, traffic):
    index = traffic["bank"]

    def alter(route: Route) -> None:
        response = route.fetch()
        receipt = response.json()
        signature = receipt["tree_head"]["signature"]
        flipped = "0" if signature[10] != "0" else "1"
        receipt["tree_head"]["signature"] = signature[:10] + flipped + signature[11:]
        route.fulfill(response=response, body=json.dumps(receipt))

    regulator.route("**/v1/audit/proof/inclusion?**", alter)
    open_section(regulator, console_gateway, f"entry/{index}")
    found = steps(regulator)
    assert found == {"entry": "true", "leaf": "true", "path": "true", "signature": "false"}
    assert "does not verify" in regulator.locator("li[data-step=signature]").inner_text()


def test_a_head_past_its_keys_retirement_fails_in_the_page(
    regulator: Page, console_gateway, traffic
):
    """The key list says the head's key was retired (rotated or revoked) at a smaller
    size: its signature is good, but a retired key cannot vouch for a later tree."""
    index = traffic["bank"]

    def retire(route: Route) -> None:
        response = route.fetch()
        listed = response.json()
        for key in listed["keys"]:
            key["last_size"] = 1
        route.fulfill(response=response, body=json.dumps(listed))

    regulator.route("**/v1/audit/keys", retire)
    open_section(regulator, console_gateway, f"entry/{index}")
    found = steps(regulator)
    assert found == {"entry": "true", "leaf": "true", "path": "true", "signature": "false"}
    assert (
        "retired after the head at size 1"
        in regulator.locator("li[data-step=signature]").inner_text()
    )


def test_a_head_of_sm2_is_shown_as_not_checkable(regulator: Page, console_gateway, traffic):
    def relabel(route: Route) -> None:
        response = route.fetch()
        receipt = response.json()
        receipt["tree_head"]["algorithm"] = "SM2-SM3"
        route.fulfill(response=response, body=json.dumps(receipt))

    regulator.route("**/v1/audit/proof/inclusion?**", relabel)
    open_section(regulator, console_gateway, f"entry/{traffic['bank']}")
    assert steps(regulator)["signature"] == "null"
    assert regulator.locator("#verdict").get_attribute("data-ok") == "null"
    assert "not checkable in the browser (SM2)" in regulator.locator("#reg-entry").inner_text()


def test_heads_and_their_consistency_checked_in_the_page(
    regulator: Page, console_gateway, traffic, screenshot
):
    open_section(regulator, console_gateway, "heads")
    regulator.wait_for_selector(".head-signature")
    marks = regulator.locator(".head-signature [data-ok]").all()
    assert marks and all(m.get_attribute("data-ok") == "true" for m in marks)
    regulator.fill("#c-from", str(traffic["first"]))
    regulator.fill("#c-to", str(traffic["second"]))
    regulator.click("#consistency button[type=submit]")
    assert steps(regulator) == {"old head": "true", "new head": "true", "consistency": "true"}
    assert regulator.locator("#verdict").get_attribute("data-ok") == "true"
    screenshot(regulator, "regulator-heads")


def test_an_altered_consistency_proof_fails_in_the_page(regulator: Page, console_gateway, traffic):
    def alter(route: Route) -> None:
        response = route.fetch()
        answer = response.json()
        answer["to_head"]["root"] = "00" * 32
        route.fulfill(response=response, body=json.dumps(answer))

    regulator.route("**/v1/audit/proof/consistency?**", alter)
    open_section(regulator, console_gateway, "heads")
    regulator.wait_for_selector(".head-signature")
    regulator.fill("#c-from", str(traffic["first"]))
    regulator.fill("#c-to", str(traffic["second"]))
    regulator.click("#consistency button[type=submit]")
    found = steps(regulator)
    assert found["consistency"] == "false" and found["new head"] == "false"


def test_the_log_filters_and_opens_an_entry(regulator: Page, console_gateway, traffic, screenshot):
    open_section(regulator, console_gateway, "log")
    regulator.wait_for_selector("a.entry-link")
    screenshot(regulator, "regulator-log")
    regulator.fill("#f-operator", "demo-insurer")
    regulator.select_option("#f-outcome", "denied")
    regulator.click("#log-filter button[type=submit]")
    regulator.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#reg-log tbody tr')];"
        " return rows.length > 0 && rows.every(r => r.innerText.includes('demo-insurer')); }"
    )
    regulator.click(f"a.entry-link:text-is('{traffic['insurer']}')")
    assert steps(regulator)["path"] == "true"


def test_replay_and_traffic(regulator: Page, console_gateway, traffic, screenshot):
    open_section(regulator, console_gateway, "replay")
    counts = regulator.locator("#replay-counts")
    counts.wait_for()
    assert "matched" in counts.inner_text() and "differs" not in counts.inner_text()
    screenshot(regulator, "regulator-replay")
    open_section(regulator, console_gateway, "traffic")
    regulator.wait_for_selector("#chart-kind svg rect.bar-c")
    assert regulator.locator("#chart-hour svg rect").count() > 0
    screenshot(regulator, "regulator-traffic")
    regulator.set_viewport_size({"width": 390, "height": 844})
    open_section(regulator, console_gateway, f"entry/{traffic['bank']}")
    assert steps(regulator)["signature"] == "true"
    screenshot(regulator, "regulator-entry-phone")


def test_an_operators_token_shows_only_its_own_entries(
    page: Page, sign_in, console_gateway, traffic
):
    """Even through the regulator's own log view, an operator's token lists only its
    own entries: the rule is the gateway's, not the page's."""
    sign_in(page, "demo-insurer")
    page.goto(f"{console_gateway.url}/console#/regulator/log")
    page.wait_for_url("**#/operator**")  # the shell offers no regulator view
    page.evaluate(
        """async (token) => {
          const { mount } = await import('/console/static/views/regulator.js');
          const { api, t } = await import('/console/static/app.js');
          const el = document.createElement('div');
          el.id = 'probe';
          document.body.append(el);
          await mount(el, { api, t, token, role: 'regulator', claims: {}, section: 'log' });
        }""",
        console_gateway.token("demo-insurer"),
    )
    page.wait_for_selector("#probe a.entry-link")
    operators = page.locator("#probe tbody tr td:nth-child(3)").all_inner_texts()
    assert operators and set(operators) == {"demo-insurer"}
    # an entry of another operator is not even served to this token
    page.goto(f"{console_gateway.url}/console")
    status = page.evaluate(
        "async ([i, token]) => (await fetch(`/v1/audit/entries/${i}`, "
        "{headers: {Authorization: `Bearer ${token}`}})).status",
        [traffic["bank"], console_gateway.token("demo-insurer")],
    )
    assert status == 404


WRONG = bytes(range(32))


def cases() -> tuple[list[list], list[bool]]:
    """Inclusion and consistency checks over trees of 1..20 leaves, every index and every
    older size, each correct and with one thing changed, and what merkle.py answers."""
    leaves = [leaf_hash(b"leaf %d" % i) for i in range(20)]
    checks, expected = [], []

    def add(kind: str, *args) -> None:
        function = verify_inclusion if kind == "inclusion" else verify_consistency
        values = [a.hex() if isinstance(a, bytes) else [p.hex() for p in a]
                  if isinstance(a, list) else a for a in args]  # fmt: skip
        checks.append([kind, *values])
        expected.append(function(*args))

    for n in range(1, 21):
        tree = MerkleTree(leaves[:n])
        root = tree.root()
        for i in range(n):
            proof = tree.inclusion_proof(i)
            add("inclusion", leaves[i], i, n, proof, root)
            add("inclusion", leaves[i], i, n + 1, proof, root)
            add("inclusion", leaves[i], (i + 1) % n, n, proof, root)
            add("inclusion", leaves[i], i, n, proof[1:], root)
            add("inclusion", WRONG, i, n, proof, root)
        for k in range(1, n + 1):
            proof = tree.consistency_proof(k)
            add("consistency", k, n, tree.root(k), root, proof)
            add("consistency", k, n, tree.root(k), WRONG, proof)
            add("consistency", k, n, WRONG, root, proof)
            add("consistency", k, n, tree.root(k), root, proof[:-1])
    return checks, expected


VECTORS_JS = """async (checks) => {
  const m = await import('/console/static/verify.js');
  const H = m.fromHex;
  const answers = [];
  for (const [kind, ...a] of checks) {
    answers.push(kind === 'inclusion'
      ? await m.verifyInclusion(H(a[0]), a[1], a[2], a[3].map(H), H(a[4]))
      : await m.verifyConsistency(a[0], H(a[2]), a[1], H(a[3]), a[4].map(H)));
  }
  const own = m.toHex(await m.leafHash(new TextEncoder().encode('leaf 0')));
  const text = m.canonicalJSON({b: 1, a: "é\\u2028", c: [true, null]});
  return {answers, own, text};
}"""


def test_verify_js_agrees_with_merkle_py(page: Page, console_gateway):
    """verify.js answers every check exactly as merkle.py does (sizes 1..20, all indexes,
    all consistency pairs, each also with its size, index, proof or root changed)."""
    checks, expected = cases()
    assert sum(expected) > len(expected) / 5  # the correct ones, and a few the RFC allows
    page.goto(f"{console_gateway.url}/console")
    found = page.evaluate(VECTORS_JS, checks)
    wrong = [
        check for check, a, b in zip(checks, found["answers"], expected, strict=True) if a != b
    ]
    assert wrong == []
    assert found["own"] == leaf_hash(b"leaf 0").hex()
    assert found["text"] == rfc8785.dumps({"b": 1, "a": "é\u2028", "c": [True, None]}).decode()


def test_head_message_is_the_gateways(page: Page, console_gateway, traffic):
    """The bytes verify.js signs-checks are the bytes audit/heads.py signs."""
    from dataauth.audit.heads import TreeHead

    head = httpx.get(f"{console_gateway.url}/v1/audit/tree-head").json()
    page.goto(f"{console_gateway.url}/console")
    message = page.evaluate(
        "async (head) => { const m = await import('/console/static/verify.js');"
        " return [m.toHex(m.headMessage(head)), await m.headDigest(head)]; }",
        head,
    )
    parsed = TreeHead.from_dict(head)
    assert message == [parsed.message().hex(), parsed.digest()]
