"""Faults of the OpenAI-server LLM backend and of the vLLM server launcher, against local fakes (no vLLM):
refused connections, 5xx, hangs, garbage and 4xx replies give bounded retries and an `LLMError` naming the
URL; answers received before a failure are cached, and a rerun asks only for the missing ones (also through
the runner's prediction store); a server that fails to start is reported with its log tail and leaves no
process behind, including when our process dies."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from baselines.llm.base import LLMError
from baselines.llm.server import _LIVE, OpenAIServerLLM, VLLMServer, _group_alive, free_port
from evals.contracts import Sampling
from tests.helpers import JsonHTTPServer

REPO = str(Path(__file__).resolve().parents[2])
CONV = [{"role": "user", "content": "Which letter? A or B"}]
FAST = dict(retries=2, backoff=0.01, timeout=2.0)


def tokens(text: str) -> list[int]:
    return [ord(c) for c in text]


class FakeOpenAI(JsonHTTPServer):
    """An OpenAI-compatible server on 127.0.0.1 whose behaviour a test sets: `mode` is ok | 500 | hang |
    garbage | nochoices | 400; requests whose body contains `fail_marker` get a 500 in any mode."""

    def __init__(self, served=("m",), root="/models/m"):
        self.mode, self.fail_marker, self.hits, self.served, self.root = "ok", None, [], list(served), root
        self.headers = []
        super().__init__()

    def handle(self, path, body, headers):
        self.headers.append(headers)
        if path == "/v1/models":       # what the backend asks once, for the model's identity (not counted)
            return 200, {"object": "list", "data": [{"id": m, "object": "model", "root": self.root,
                                                      "created": time.time()} for m in self.served]}
        self.hits.append(path)
        status, reply = self.answer(path, body)
        return (None, None) if status == "hang" else (status, reply)

    def count(self, path: str) -> int:
        return sum(h == path for h in self.hits)

    def answer(self, path, body):
        if self.fail_marker and self.fail_marker in json.dumps(body):
            return 500, {"error": "deliberate failure"}
        mode = self.mode
        if mode == "500":
            return 500, {"error": "internal"}
        if mode == "hang":
            return "hang", None
        if mode == "garbage":
            return 200, b"<html>not json"
        if mode == "nochoices":
            return 200, {"object": "error-ish"}
        if mode == "400":
            return 400, {"error": {"message": "This model's maximum context length is 2048 tokens"}}
        if mode == "empty":
            return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "  "}}]}
        if path == "/v1/chat/completions":
            choice = (body.get("structured_outputs") or {}).get("choice")
            text = choice[-1] if choice else " a summary of " + body["messages"][-1]["content"][:20] + " "
            return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
        if path == "/tokenize":
            text = "".join(m["content"] for m in body["messages"]) + ">" if "messages" in body else body["prompt"]
            return 200, {"tokens": tokens(text)}
        if path == "/v1/completions":   # log-prob of token t at position i: -t/1000
            return 200, {"choices": [{"index": i, "prompt_logprobs": [None] + [
                {str(t): {"logprob": -t / 1000, "rank": 1}, "99999": {"logprob": -50.0}} for t in p[1:]]}
                for i, p in enumerate(body["prompt"])]}
        return 404, {"error": f"no route {path}"}



@pytest.fixture
def fake():
    f = FakeOpenAI()
    yield f
    f.close()


def test_healthy_chat_choice_and_score(fake, tmp_path):
    llm = OpenAIServerLLM("m", url=fake.url + "/v1", cache=str(tmp_path / "c.sqlite"), **FAST)
    assert llm.chat([CONV], Sampling(max_tokens=5)) == ["a summary of Which letter? A or B"]
    assert llm.chat([CONV], choice=["A", "B"]) == ["B"]
    (row,) = llm.score([CONV], [["ab", "c"]])
    assert row == [(pytest.approx(-(97 + 98) / 1000), 2), (pytest.approx(-99 / 1000), 1)]
    n = len(fake.hits)
    assert llm.score([CONV], [["ab", "c"]]) == [row] and len(fake.hits) == n      # cached
    assert llm.describe()["url"] == fake.url


def test_refused_connection_is_retried_then_stops_the_run_naming_the_url(tmp_path):
    from baselines.llm.base import BackendUnavailable
    from evals.contracts import InfrastructureError

    url = f"http://127.0.0.1:{free_port()}"
    llm = OpenAIServerLLM("m", url=url, **FAST)
    with pytest.raises(BackendUnavailable, match=f"{url}/v1/models: no server answers"):
        llm.check()                                   # before a run: nothing there
    fake = FakeOpenAI()
    llm = OpenAIServerLLM("m", url=fake.url, **FAST)
    llm.check()
    fake.close()                                      # the server goes away mid-run
    with pytest.raises(InfrastructureError, match=f"{fake.url}/v1/chat/completions.*failed after 3 attempts: "
                                                  "ConnectError"):
        llm.chat([CONV])


@pytest.mark.parametrize("mode,why", [("500", "HTTP 500"), ("garbage", "unreadable reply"),
                                      ("nochoices", "unreadable reply")])
def test_server_errors_and_garbage_are_retried_a_bounded_number_of_times(fake, mode, why):
    fake.mode = mode
    llm = OpenAIServerLLM("m", url=fake.url, **FAST)
    with pytest.raises(LLMError, match=f"2 of 2 chat requests failed.*{fake.url}.*3 attempts.*{why}"):
        llm.chat([CONV, CONV + [{"role": "user", "content": "again"}]])
    assert fake.count("/v1/chat/completions") == 2 * 3


def test_hang_ends_at_the_timeout(fake):
    fake.mode = "hang"
    llm = OpenAIServerLLM("m", url=fake.url, retries=1, backoff=0.05, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="2 attempts: ReadTimeout"):
        llm.chat([CONV, CONV + [{"role": "user", "content": "b"}]])
    assert time.monotonic() - t0 < 2 * 0.3 + 0.05 + 1.5       # concurrent requests: one request's budget
    assert fake.count("/v1/chat/completions") == 2 * 2


def test_4xx_is_not_retried_and_reports_the_server_message(fake):
    fake.mode = "400"
    llm = OpenAIServerLLM("m", url=fake.url, **FAST)
    with pytest.raises(LLMError, match="HTTP 400.*maximum context length is 2048"):
        llm.score([CONV], [["A", "B"]])
    assert fake.hits == ["/tokenize"]


def test_partial_failure_caches_the_rest_and_a_rerun_asks_only_for_the_missing(fake, tmp_path):
    cache = str(tmp_path / "llm.sqlite")
    convs = [[{"role": "user", "content": f"question {i}"}] for i in range(4)]
    fake.fail_marker = "question 2"
    llm = OpenAIServerLLM("m", url=fake.url, cache=cache, **FAST)
    with pytest.raises(LLMError, match="1 of 4 chat requests failed.*request 2.*HTTP 500"):
        llm.chat(convs, choice=["A", "B"])
    with pytest.raises(LLMError, match="1 of 4 score requests failed"):
        llm.score(convs, [["yes", "no"]] * 4)
    assert fake.count("/v1/chat/completions") == 3 + 3          # 3 healthy + 3 attempts of the failing one
    fake.fail_marker, fake.hits = None, []
    again = OpenAIServerLLM("m", url=fake.url, cache=cache, **FAST)
    assert again.chat(convs, choice=["A", "B"]) == ["B"] * 4
    assert fake.hits == ["/v1/chat/completions"]
    fake.hits = []
    rows = again.score(convs, [["yes", "no"]] * 4)
    assert len(rows) == 4 and fake.count("/v1/completions") == 1   # only the failed conversation is scored


def test_runner_records_failed_items_and_a_rerun_fills_exactly_those(fake, tmp_path):
    from baselines.aggregator import BlindLLM
    from evals.runner import predict_all
    from evals.store import PredictionStore
    from evals.synthetic import SyntheticBenchmark

    samples = SyntheticBenchmark(str(tmp_path / "syn"), task="mcqa", workers=1, generator=dict(
        n_train=4, n_val=2, n_test=3, max_duration=40, min_duration=20)).load()
    marker = "How many times"
    flaky = {s.uid for s in samples if marker in s.question}
    assert 0 < len(flaky) < len(samples)
    cache = str(tmp_path / "llm.sqlite")

    def run(llm):
        system = BlindLLM(llm, name="blind", mcqa="letter")
        system.prepare()
        store = PredictionStore(tmp_path / "out", "h")
        predict_all(system, samples, store, 8, {}, {"system": "blind"}, progress=False)
        return store

    fake.fail_marker = marker
    store = run(OpenAIServerLLM("m", url=fake.url, cache=cache, retries=1, backoff=0.01, timeout=2))
    failed = {u for u, p in store.predictions.items() if p.failure}
    assert failed == flaky and len(store.predictions) == len(samples)
    assert all(fake.url in store.predictions[u].failure and "HTTP 500" in store.predictions[u].failure
               for u in failed)
    assert all(store.predictions[s.uid].choice == len(s.options) - 1 for s in samples if s.uid not in failed)
    fake.fail_marker, fake.hits = None, []
    store = run(OpenAIServerLLM("m", url=fake.url, cache=cache, retries=1, backoff=0.01, timeout=2))
    assert fake.count("/v1/chat/completions") == len(flaky)
    assert not any(p.failure for p in store.predictions.values()) and len(store.predictions) == len(samples)


# --- the launcher, with a fake `vllm.entrypoints.openai.api_server` module ---------------------------------
FAKE_VLLM = textwrap.dedent('''
    import argparse, json, os, signal, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    ap = argparse.ArgumentParser()
    ap.add_argument("--model"); ap.add_argument("--port", type=int)
    args, _ = ap.parse_known_args()
    print("fake vllm starting", args.model, flush=True)
    if not os.path.isdir(args.model):
        print(f"fake vllm: no model at {args.model}", flush=True)
        sys.exit(3)
    # like vLLM's EngineCore: a child in the same process group
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["FAKE_VLLM_PIDS"], "a") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    def bye(*_):
        child.terminate()
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    if os.environ.get("FAKE_VLLM_NEVER_READY"):
        time.sleep(600)
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def reply(self, obj):
            data = json.dumps(obj).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
            self.wfile.write(data)
        def do_GET(self):
            self.reply({"data": [{"id": "m", "root": args.model}]} if self.path == "/v1/models" else {})
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.reply({"choices": [{"index": 0, "message": {"content": "from the launched server"}}]})
    HTTPServer(("127.0.0.1", args.port), H).serve_forever()
''')


@pytest.fixture
def fake_vllm(tmp_path):
    pkg = tmp_path / "fakepkg" / "vllm" / "entrypoints" / "openai"
    pkg.mkdir(parents=True)
    for d in (pkg, pkg.parent, pkg.parent.parent):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(FAKE_VLLM)
    (tmp_path / "model").mkdir()
    pids = tmp_path / "pids.txt"
    env = {"PYTHONPATH": str(tmp_path / "fakepkg"), "FAKE_VLLM_PIDS": str(pids)}
    kw = dict(model_path=str(tmp_path / "model"), python=sys.executable, env=env, log=str(tmp_path / "server.log"),
              startup_timeout=30, stop_timeout=5)
    yield kw, pids
    for server in list(_LIVE):     # whatever a failing test left running
        server.stop()


def _pids(path) -> list[int]:
    return [int(p) for line in path.read_text().split("\n") if line for p in line.split()] if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:          # a zombie waiting to be reaped is gone too
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _wait_gone(pids, seconds=10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not all(map(_gone, pids)):
        time.sleep(0.1)
    return all(map(_gone, pids))


def test_server_start_serve_stop_leaves_no_process(fake_vllm):
    kw, pids = fake_vllm
    with VLLMServer(**kw) as server:
        pgid = server.proc.pid
        assert server.running() and len(_pids(pids)) == 2
        llm = OpenAIServerLLM("m", url=server.url, **FAST)
        assert llm.chat([CONV]) == ["from the launched server"]
    assert not _group_alive(pgid) and _wait_gone(_pids(pids), 1)


def test_tensor_parallel_size_is_a_launch_setting():
    """`llm.launch.tensor_parallel_size=N` shards the served LLM over N GPUs (vLLM's own flag); 1 adds nothing."""
    one = VLLMServer("/models/m", port=8000).command()
    four = VLLMServer("/models/m", port=8000, tensor_parallel_size=4).command()
    assert "--tensor-parallel-size" not in one
    assert four[four.index("--tensor-parallel-size") + 1] == "4" and len(four) == len(one) + 2


@pytest.mark.parametrize("case", ["missing_model", "bin_false", "never_ready"])
def test_server_startup_failure_is_quick_clear_and_clean(fake_vllm, tmp_path, case):
    kw, pids = fake_vllm
    expect = {"missing_model": "exited with code 3.*fake vllm: no model at", "bin_false": "exited with code 1",
              "never_ready": "not healthy after 2 s.*fake vllm starting"}[case]
    if case == "missing_model":
        kw["model_path"] = str(tmp_path / "nowhere")
    elif case == "bin_false":
        kw["python"] = "/bin/false"
    else:
        kw["env"]["FAKE_VLLM_NEVER_READY"] = "1"
        kw["startup_timeout"] = 2
    server = VLLMServer(port=free_port(), **kw)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=f"(?s)vLLM server for .*{kw['model_path']}.* on port {server.port} {expect}"):
        server.start()
    assert time.monotonic() - t0 < 15
    assert server.proc is None and _wait_gone(_pids(pids), 5)


def test_shared_server_is_reused_launched_lazily_and_stopped_by_close(fake_vllm):
    kw, pids = fake_vllm
    a = OpenAIServerLLM("m", launch=kw, **FAST)
    b = OpenAIServerLLM("m", launch=kw, retries=0)
    assert a.server is None and not _pids(pids)                 # nothing launched before the first request
    assert a.chat([CONV]) == b.chat([CONV + CONV]) == ["from the launched server"]
    assert a.server is b.server and len(_pids(pids)) == 2        # one server process (+ its child)
    a.close()
    assert b.server.running()
    b.close()
    assert _wait_gone(_pids(pids), 1)
    assert a.describe()["launch_model_path"] == kw["model_path"]
    with pytest.raises(ValueError, match="exactly one of url= or launch="):
        OpenAIServerLLM("m")


def test_server_dies_with_our_process(fake_vllm, tmp_path):
    """Launched from a worker thread (as a lazy backend may be), then our process is SIGKILLed: no atexit
    runs, but PR_SET_PDEATHSIG takes the server down, and the server takes its child with it."""
    kw, pids = fake_vllm
    script = textwrap.dedent(f'''
        import os, signal, sys, threading
        import time, urllib.request
        sys.path.insert(0, {REPO!r})
        from baselines.llm.server import VLLMServer
        box = []
        t = threading.Thread(target=lambda: box.append(VLLMServer(**{kw!r}).start()))
        t.start(); t.join()
        time.sleep(1.0)                  # the launching thread is gone; the server must still be up
        print("started", urllib.request.urlopen(box[0].url + "/health", timeout=5).status, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    ''')
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGKILL and "started 200" in r.stdout, r.stderr
    assert len(_pids(pids)) == 2 and _wait_gone(_pids(pids), 10)


def test_a_failed_launch_is_reported_once_and_a_taken_port_is_refused(fake_vllm, fake, tmp_path):
    kw, _ = fake_vllm
    llm = OpenAIServerLLM("m", launch={**kw, "model_path": str(tmp_path / "nowhere")}, **FAST)
    for _ in range(2):      # the runner retries item by item: the launch is not repeated for each item
        with pytest.raises(LLMError, match="no server: vLLM server for .*nowhere.* exited with code 3"):
            llm.chat([CONV])
    assert open(kw["log"]).read().count("fake vllm starting") == 1
    port = int(fake.url.rsplit(":", 1)[1])   # another server listens there: it must not pass for ours
    with pytest.raises(RuntimeError, match=f"port {port} on 127.0.0.1 is not free"):
        VLLMServer(port=port, **kw).start()


# --- identity, keys, capabilities ------------------------------------------------------------------------------------
def test_the_cache_follows_the_served_model_not_its_name_or_url(tmp_path):
    """Another URL for the same served model (same root) shares cached answers; the same name over another
    checkpoint (another root) is asked again."""
    cache = str(tmp_path / "llm.sqlite")
    a, b, c = FakeOpenAI(root="/models/ckpt-1"), FakeOpenAI(root="/models/ckpt-1"), FakeOpenAI(root="/models/ckpt-2")
    try:
        first = OpenAIServerLLM("m", url=a.url, cache=cache, **FAST)
        reply = first.chat([CONV])
        moved = OpenAIServerLLM("m", url=b.url, cache=cache, **FAST)
        assert moved.identity() == first.identity() and moved.chat([CONV]) == reply and b.hits == []
        other = OpenAIServerLLM("m", url=c.url, cache=cache, **FAST)
        assert other.identity()["root"] == "/models/ckpt-2"
        other.chat([CONV])
        assert c.hits == ["/v1/chat/completions"]
        with pytest.raises(Exception, match=r"model 'nope' is not served at .*; it serves \['m'\]"):
            OpenAIServerLLM("nope", url=a.url, **FAST).check()
    finally:
        for f in (a, b, c):
            f.close()


def test_a_local_root_adds_the_weights_identity(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"x" * 10)
    fake = FakeOpenAI(root=str(tmp_path / "ckpt"))
    try:
        before = OpenAIServerLLM("m", url=fake.url, **FAST).identity()
        (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"y" * 11)      # retrained in place
        assert OpenAIServerLLM("m", url=fake.url, **FAST).identity() != before
    finally:
        fake.close()


def test_api_keys_go_only_where_the_config_names_them(fake, monkeypatch):
    from baselines.captioners.openai_server import OpenAICaptioner
    from evals.contracts import ConfigError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("MY_KEY", "sk-mine")
    OpenAIServerLLM("m", url=fake.url, **FAST).chat([CONV])
    assert all("Authorization" not in h for h in fake.headers)           # set in the environment, not named
    OpenAIServerLLM("m", url=fake.url, api_key_env="MY_KEY", **FAST).chat([CONV + CONV])
    assert fake.headers[-1]["Authorization"] == "Bearer sk-mine"          # named, and this machine: sent
    for make in (lambda u: OpenAIServerLLM("m", url=u, api_key_env="MY_KEY"),
                 lambda u: OpenAICaptioner(u, "m", api_key_env="MY_KEY")):
        with pytest.raises(ConfigError, match=r"refusing to send the key in \$MY_KEY over plain http:// to "
                                              r"models.example.org"):
            make("http://models.example.org:8000")
        make("https://models.example.org")                                # https: fine
    assert OpenAICaptioner(fake.url, "m").headers == {}
    with pytest.raises(ConfigError, match="UNSET_KEY but that environment variable is not set"):
        OpenAIServerLLM("m", url=fake.url, api_key_env="UNSET_KEY")


def test_every_backend_implements_the_one_contract(tmp_path):
    from baselines.llm.hf import HFChat
    from baselines.llm.offline import VLLMOffline
    from evals.contracts import CHAT, CHOICE, SCORE
    from evals.contracts import LLMBackend as Contract

    for backend in (OpenAIServerLLM("m", url="http://127.0.0.1:1"), HFChat(str(tmp_path)), VLLMOffline(str(tmp_path))):
        assert isinstance(backend, Contract)
        assert backend.capabilities == {CHAT, SCORE, CHOICE}
    assert OpenAIServerLLM("m", url="http://127.0.0.1:1", capabilities=["chat"]).capabilities == {CHAT}
    with pytest.raises(ValueError, match="unknown capabilities"):
        OpenAIServerLLM("m", url="http://127.0.0.1:1", capabilities=["logits"])


def test_an_empty_reply_is_a_failure_never_cached(fake, tmp_path):
    cache = str(tmp_path / "c.sqlite")
    fake.mode = "empty"
    llm = OpenAIServerLLM("m", url=fake.url, cache=cache, **FAST)
    with pytest.raises(LLMError, match="empty reply"):
        llm.chat([CONV])
    fake.mode = "ok"
    assert OpenAIServerLLM("m", url=fake.url, cache=cache, **FAST).chat([CONV]) == ["a summary of Which letter? A or B"]
