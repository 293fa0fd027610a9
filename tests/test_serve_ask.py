"""``POST /v1/ask`` of ``medtune serve --kb DIR`` (FastAPI's test client): answers with sources, the
no-answer case, the error codes and shapes of the other routes, and no question text in any log line."""

from __future__ import annotations

import logging
import secrets

import pytest

from medtune.document import Document
from medtune.errors import ModelError
from medtune.serve.command import serve
from medtune.serve.security import ServeSettings

fastapi = pytest.importorskip("fastapi")
pytest.importorskip("bm25s")
pytest.importorskip("faiss")
from fastapi.testclient import TestClient  # noqa: E402

from medtune.retrieval import KbSettings, KnowledgeBase  # noqa: E402
from medtune.retrieval.passages import SourceSet  # noqa: E402
from medtune.serve.app import create_app  # noqa: E402

TOKEN = "test-" + secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAME, MRN = "Quintessa Vandermolen-Oyelaran", "MRN73920QX118"
SETTINGS = ServeSettings(max_chars=300, max_body_bytes=4000, mode="fp32")
DOCS = [("gout", "Gout is caused by uric acid crystals in the joints. Red meat raises uric acid."),
        ("asthma", "Asthma causes wheezing and shortness of breath. Attacks come at night.")]


@pytest.fixture(scope="module")
def kb_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-kb") / "notes-kb"
    settings = KbSettings.model_validate({"encoder": {"name": str(tiny_model_dir), "max_length": 32, "bf16": False},
                                          "answer": {"thresholds": {"dense": 0.0}}})
    docs = [Document(id=i, text=t, metadata={"url": f"https://example.org/{i}", "title": i.title()}) for i, t in DOCS]
    KnowledgeBase.from_sources(SourceSet(docs, [{"kind": "test"}]), out, settings=settings)
    return out


@pytest.fixture(scope="module")
def client(kb_dir):
    app = create_app([], SETTINGS, token=TOKEN, background_load=False, kb=kb_dir)
    with TestClient(app) as c:
        yield c


def ask(client, body, headers=AUTH, **kwargs):
    return client.post("/v1/ask", json=body, headers=headers, **kwargs)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fix"}
    assert body["error"]["code"] == code and body["error"]["fix"]
    return body["error"]


def test_ask_answers_with_the_passage_and_its_source(client):
    assert client.get("/ready").status_code == 200
    response = ask(client, {"question": "uric acid crystals gout", "top_k": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["kb"] == "notes-kb" and body["answered"] is True and body["score_kind"] == "dense"
    assert body["answer"]["source"] == {"document": "gout", "start": 0, "end": len(DOCS[0][1]), "title": "Gout",
                                        "url": "https://example.org/gout"}
    assert body["answer"]["text"] == DOCS[0][1] and len(body["hits"]) == 2
    assert ask(client, {"question": "gout"}).json()["hits"][0]["rank"] == 1  # top_k defaults to 5 (2 passages)


def test_a_question_below_the_threshold_is_answered_false_not_an_error(client):
    served = client.app.state.kb.kb  # the route's target and its loaded knowledge base
    served.configure(answer={"thresholds": {"dense": 2.0}})
    try:
        response = ask(client, {"question": "uric acid crystals gout"})
    finally:
        served.configure(answer={"thresholds": {"dense": 0.0}})
    assert response.status_code == 200
    body = response.json()
    assert body["answered"] is False and body["answer"] is None and body["hits"] and body["threshold"] == 2.0


@pytest.mark.parametrize("body,field", [
    ({}, "question"), ({"question": 3}, "question"), ({"question": "x", "top_k": 0}, "top_k"),
    ({"question": "x", "top_k": "5"}, "top_k"), ({"question": "x", "k": 5}, "<key>"), ({"question": "  "}, "question"),
    ({"question": "x", "top_k": 101}, "top_k")])
def test_bad_requests_name_the_field(client, body, field):
    error = assert_error(ask(client, body), 422, "E604")
    assert f"field '{field}'" in error["message"]


def test_the_other_routes_error_codes(client):
    assert_error(client.post("/v1/ask", content=b"{'question': 1}", headers={**AUTH, "Content-Type": "application/json"}),
                 422, "E604")
    assert_error(client.post("/v1/ask", content=b'{"question": "a", "question": "b"}',
                             headers={**AUTH, "Content-Type": "application/json"}), 422, "E604")
    assert_error(client.post("/v1/ask", content=b'{"question": "a"}', headers={**AUTH, "Content-Type": "text/plain"}),
                 415, "E607")
    assert_error(ask(client, {"question": "gout"}, headers={}), 401, "E610")
    assert_error(ask(client, {"question": "g" * 301}), 413, "E603")
    assert_error(ask(client, {"question": "g" * 5000}), 413, "E601")
    assert_error(client.get("/v1/ask", headers=AUTH), 405, "E608")
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/v1/ask"]["post"]["security"] == [{"bearer": []}]


def test_no_log_line_holds_the_question(client, caplog):
    question = f"Does {NAME} ({MRN}) have gout?"
    with caplog.at_level(logging.DEBUG):
        assert ask(client, {"question": question}).status_code == 200
        ask(client, {"question": question, NAME: MRN})
        ask(client, {"question": question * 20})
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    access = [r.getMessage() for r in records if r.name == "medtune.serve.access"]
    assert access[0].startswith("POST /v1/ask 200") and f"characters={len(question)}" in access[0]
    assert "answered=" in access[0] and len(access) == 3
    for record in records:
        line = record.getMessage() + " " + (record.exc_text or "") + " " + repr(record.args)
        assert NAME not in line and MRN not in line and "Vandermolen" not in line


def test_without_kb_there_is_no_ask_route_and_a_bad_kb_fails_before_serving(tmp_path):
    app = create_app([], SETTINGS, token=TOKEN, background_load=False)
    with TestClient(app) as c:
        assert_error(c.post("/v1/ask", json={"question": "gout"}, headers=AUTH), 404, "E608")
        assert "/v1/ask" not in c.get("/openapi.json").json()["paths"]
    with pytest.raises(ModelError, match="does not exist"):
        serve([], kb=str(tmp_path / "nowhere"), port=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a knowledge base"):
        serve([], kb=str(tmp_path / "empty"), port=0)
