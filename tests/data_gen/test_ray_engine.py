"""data-gen on Ray Data (local mode): the same corpus as one process, a crashed run resumed exactly, loopback only."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from toolcall.data_gen.checkpoint import CORPUS, PROGRESS
from toolcall.data_gen.config import DataGenConfig, FilterConfig, PositionConfig, SampleConfig
from toolcall.data_gen.pipeline import Pipeline, run_data_gen
from user_tools_state import user_tools_restored

from toolcall.backends.toy_lm import ToyLM
from toolcall.errors import MissingDependencyError

# The toy LM learns where a Calculator call goes (after "a total of") from these texts alone (as test_stages_fake).
LM_TEXTS = [
    "The store sold 12 apples and 30 pears, a total of [Calculator(12 + 30) -> 42] 42 fruits.",
    "The farm has 12 cows and 30 sheep, a total of [Calculator(12 + 30) -> 42] 42 animals.",
    "We had 12 red and 30 blue pens, a total of [Calculator(12 + 30) -> 42] 42 pens.",
]
PAIRS = [(12, 30), (3, 4), (10, 20), (7, 8), (1, 2), (5, 6), (11, 12), (2, 9), (4, 4), (6, 1)]
TEXTS = [f"The shop sold {a} apples and {b} pears, a total of {a + b} fruits." for a, b in PAIRS]
TEXTS[4] = "Cats sleep a lot and dogs bark."   # a text that keeps no call still gets its progress line
CONFIG = DataGenConfig(tools=("calculator",), positions=PositionConfig(tau_s=0.05, k=3),
                       sample=SampleConfig(m=3, seed=1), filter=FilterConfig(tau_f=-1.0, tau_p=-1.0), overrides={})


def spec() -> Any:
    from toolcall.data_gen.ray_engine import PipelineSpec

    return PipelineSpec(CONFIG, backend="fake", backend_options={"lm": ToyLM(LM_TEXTS, order=5, smoothing=0.1)})


@dataclass(frozen=True)
class Recording:
    """Builds the spec's Pipeline, logs each text an actor processes to `log`, and raises at text `crash_at`."""

    log: str
    crash_at: int | None = None

    def __call__(self) -> Pipeline:
        pipeline = spec()()
        process = pipeline.process

        def logged(text: str, tick: Any = lambda stage: None, fields: Any = None) -> Any:
            index = TEXTS.index(text)
            with open(self.log, "a", encoding="utf-8") as fh:
                fh.write(f"{index}\n")
            if index == self.crash_at:
                raise RuntimeError(f"crash on text {index}")
            return process(text, tick, fields)

        pipeline.process = logged  # type: ignore[method-assign]
        return pipeline


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    pytest.importorskip("ray.data")
    import ray
    from ray import cloudpickle
    from toolcall.data_gen.ray_engine import init_ray

    # Ray's workers cannot import this test module (pytest imports it by path): ship its classes by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    init_ray(None)
    yield ray
    ray.shutdown()


@pytest.fixture()
def texts(tmp_path: Path) -> Path:
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return path


def kept_calls(out: Path) -> list[tuple[Any, ...]]:
    return [(r["original"], c["tool"], tuple(c["args"]), c["result"], c["position"], c["loss_reduction"])
            for line in (out / CORPUS).read_text().splitlines() for r in [json.loads(line)] for c in r["calls"]]


def processed(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


@pytest.mark.slow
def test_ray_gives_the_single_process_corpus_and_listens_on_loopback_only(ray_local: Any, texts: Path,
                                                                           tmp_path: Path) -> None:
    from toolcall.data_gen.ray_engine import run_data_gen_ray

    local = run_data_gen(texts, tmp_path / "local", spec()(), progress=False)
    stats = run_data_gen_ray(texts, tmp_path / "ray", spec(), CONFIG, spec().registry(), progress=False)
    assert stats["calls_kept"] == local["calls_kept"] >= 5 and kept_calls(tmp_path / "ray")
    assert kept_calls(tmp_path / "ray") == kept_calls(tmp_path / "local")
    # Same records in the same order, same per-text progress (less timings), same exports.
    assert (tmp_path / "ray" / CORPUS).read_text() == (tmp_path / "local" / CORPUS).read_text()
    strip = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
             for line in (tmp_path / "ray" / PROGRESS).read_text().splitlines()]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                     for line in (tmp_path / "local" / PROGRESS).read_text().splitlines()]
    assert {k: v for k, v in stats.items() if k != "seconds"} == {k: v for k, v in local.items() if k != "seconds"}
    for name in ("stats.json", "moss.jsonl", "hf_dataset", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).exists()
    assert (tmp_path / "ray" / "moss.jsonl").read_text() == (tmp_path / "local" / "moss.jsonl").read_text()

    # Every listening socket of this process and the Ray processes it started is on the loopback address.
    import psutil

    me = psutil.Process()
    listening = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            listening += [(proc.name(), c.laddr) for c in proc.net_connections(kind="inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    assert len(listening) >= 3   # the GCS, the raylet, the object manager, workers' gRPC servers
    assert all(loopback(addr.ip) for _, addr in listening), listening


def loopback(ip: str) -> bool:
    import ipaddress

    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)   # "::ffff:127.0.0.1": an IPv6 socket bound to the IPv4 loopback
    return (mapped or address).is_loopback


@pytest.mark.slow
def test_a_text_whose_row_was_not_written_whole_is_done_again(ray_local: Any, texts: Path, tmp_path: Path) -> None:
    """Ray Data's checkpoint once recorded a text whose row it had not written (a crash between the two), and the
    resumed run skipped it: the text was lost. The rows read back decide what is left."""
    from toolcall.data_gen.ray_engine import RAY_DIR, run_data_gen_ray

    run_data_gen(texts, tmp_path / "local", spec()(), progress=False)
    out, first, second = tmp_path / "ray", tmp_path / "first.log", tmp_path / "second.log"
    with pytest.raises(Exception, match="crash on text 9"):
        run_data_gen_ray(texts, out, Recording(str(first), crash_at=9), CONFIG, spec().registry(), progress=False)
    files = sorted((out / RAY_DIR / "rows").glob("*.json*"))
    lines = [(p, line) for p in files for line in p.read_text().splitlines(keepends=True)]
    assert len(lines) >= 2
    (lost_path, lost), (cut_path, cut) = lines[0], lines[-1]
    lost_id, cut_id = json.loads(lost)["id"], json.loads(cut)["id"]
    for path in {lost_path, cut_path}:   # one row gone, another cut short
        kept = [line for p, line in lines if p == path and line is not lost]
        path.write_text("".join(line[: len(line) // 2] if line is cut else line for line in kept))
    run_data_gen_ray(texts, out, Recording(str(second)), CONFIG, spec().registry(), resume=True, progress=False)
    assert {lost_id, cut_id} <= set(processed(second))
    assert (out / CORPUS).read_text() == (tmp_path / "local" / CORPUS).read_text()


@pytest.mark.slow
def test_a_crashed_run_resumed_loses_and_duplicates_nothing(ray_local: Any, texts: Path, tmp_path: Path) -> None:
    from toolcall.data_gen.ray_engine import RAY_DIR, read_rows, run_data_gen_ray

    run_data_gen(texts, tmp_path / "local", spec()(), progress=False)
    out, first, second = tmp_path / "ray", tmp_path / "first.log", tmp_path / "second.log"
    with pytest.raises(Exception, match="crash on text 9"):
        run_data_gen_ray(texts, out, Recording(str(first), crash_at=9), CONFIG, spec().registry(), progress=False)
    written = set(read_rows(out / RAY_DIR / "rows"))
    assert 9 not in written and 9 in processed(first) and len(written) < len(TEXTS)

    stats = run_data_gen_ray(texts, out, Recording(str(second)), CONFIG, spec().registry(), resume=True,
                             progress=False)
    # The re-run did every text whose rows had not been written, each once. Ray Data checkpoints a block after
    # writing its rows, so a crash between the two (seen in 1 of 5 full runs) re-does that block too: its rows are
    # then written twice, and joined once (read_rows keeps one row per text), so the corpus below is still exact.
    again = processed(second)
    assert len(again) == len(set(again)) and set(range(len(TEXTS))) - written <= set(again)
    redone = set(again) & written
    assert len(redone) <= 2   # at most the blocks in flight at the crash (a text per batch, one per actor)
    rows = [json.loads(line) for p in sorted((out / RAY_DIR / "rows").glob("*.json*"))
            for line in p.read_text().splitlines()]
    ids = [r["id"] for r in rows]
    assert set(ids) == set(range(len(TEXTS))) and all(ids.count(i) == 1 for i in set(ids) - redone)
    assert (out / CORPUS).read_text() == (tmp_path / "local" / CORPUS).read_text()
    assert stats["texts_done"] == len(TEXTS)
    assert [json.loads(line)["index"] for line in (out / PROGRESS).read_text().splitlines()] == list(range(len(TEXTS)))


@pytest.mark.slow
def test_a_single_process_run_resumes_on_ray_and_the_cli_takes_the_engine(ray_local: Any, texts: Path,
                                                                           tmp_path: Path) -> None:
    from toolcall.data_gen.ray_engine import RAY_DIR, read_rows, run_data_gen_ray

    from toolcall.cli import main

    class Stop(Exception):
        pass

    def stop_after(index: int) -> None:
        if index == 3:
            raise Stop

    out = tmp_path / "mixed"
    with pytest.raises(Stop):
        run_data_gen(texts, out, spec()(), progress=False, on_text_done=stop_after)
    run_data_gen_ray(texts, out, spec(), CONFIG, spec().registry(), resume=True, progress=False)
    assert set(read_rows(out / RAY_DIR / "rows")) == set(range(4, len(TEXTS)))   # Ray did only the rest
    run_data_gen(texts, tmp_path / "local", spec()(), progress=False)
    assert (out / CORPUS).read_text() == (tmp_path / "local" / CORPUS).read_text()

    # The command line: the fake backend (uniform toy LM) through Ray, the usual files written.
    cli_out = tmp_path / "cli"
    assert main(["data-gen", "--input", str(texts), "--output", str(cli_out), "--backend", "fake", "--engine", "ray",
                 "--actors", "1", "--tools", "calculator", "--no-progress"]) == 0
    stats = json.loads((cli_out / "stats.json").read_text())
    assert stats["texts_done"] == len(TEXTS) and (cli_out / CORPUS).exists()


def test_engine_flags_are_checked_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.cli import main

    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    assert main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--address", "auto"]) == 1
    assert "--engine ray" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--engine", "spark"])
    assert exc.value.code == 2
    assert main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--engine", "ray",
                 "--actors", "0"]) == 1
    assert "--actors must be at least 1, got 0" in capsys.readouterr().err


@pytest.fixture
def ray_actor_tools_forgotten() -> Iterator[None]:
    with user_tools_restored("ray_actor_tools"):
        yield


@pytest.mark.usefixtures("ray_actor_tools_forgotten")
def test_the_actors_get_every_tool_option_the_command_line_gave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    from toolcall.data_gen import ray_engine

    from toolcall.cli import main

    texts = tmp_path / "t.txt"
    texts.write_text("The total of 2 and 3 is 5.\n")
    (tmp_path / "ray_actor_tools.py").write_text(
        "import toolcall\n\n@toolcall.tool\ndef echo_upper(text: str) -> str:\n"
        '    """Upper case.\n\n    Args:\n        text: what to upper-case\n    """\n    return text.upper()\n')
    seen: list[Any] = []
    stats = {"texts_in": 1, "texts_after_prefilter": 1, "texts_kept": 0, "calls_kept": 0, "per_tool": {}}

    def run(inp: Path, out: Path, spec: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        seen.append(spec)
        return stats

    monkeypatch.setattr(ray_engine, "run_data_gen_ray", run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wiki.txt").write_text("Zorblax is a moon of Quux.\n", encoding="utf-8")
    try:
        assert main(["data-gen", "--input", str(texts), "--output", str(tmp_path / "o"), "--engine", "ray",
                     "--backend", "fake", "--tools-from", "ray_actor_tools.py", "--mcp-timeout", "7",
                     "--mcp-env", "FOO=1", "--wiki-corpus", "wiki.txt"]) == 0
        toolset = pickle.loads(pickle.dumps(seen[0])).toolset
        assert toolset.tools_from == (str(tmp_path / "ray_actor_tools.py"),)   # absolute: an actor runs elsewhere
        assert toolset.wiki_corpus == str(tmp_path / "wiki.txt")
        assert (toolset.mcp_timeout, toolset.mcp_env) == (7.0, ("FOO=1",))
        assert [t.name for t in seen[0].registry()] == ["echo_upper"]   # an actor's build configures the corpus too
    finally:
        from toolcall.tools import wikisearch

        wikisearch.configure(None)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from toolcall.data_gen import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError, match=r"toolcall\[ray\]"):
        ray_engine.init_ray(None)


def test_the_join_reads_records_holding_line_separators_and_keeps_rows_past_the_limit(tmp_path: Path) -> None:
    """A record whose text holds U+2028 or U+0085 (JSON leaves them raw) was cut in two when a Ray resume read the
    committed corpus (a JSONDecodeError, every resume); and rows Ray wrote for texts past a smaller --limit were an
    IndexError. No Ray needed: the driver's join alone."""
    from toolcall.data_gen.checkpoint import RunDir
    from toolcall.data_gen.ray_engine import _assemble

    run = RunDir(tmp_path / "out", False, {})
    odd = {"original": "one\u2028two\x85three", "text": "one\u2028two\x85three", "calls": []}
    run.commit(0, odd, {"kept": 1})
    run.commit(1, None, {"kept": 0})
    row = {"record": json.dumps({"original": "later", "text": "later", "calls": []}), "summary": json.dumps({"kept": 1}),
           "rejected": json.dumps([{"stage": "sample", "position": 0, "reason": "x"}])}
    _assemble(run, {3: row}, [("one\u2028two\x85three", {}), ("plain", {})])   # this run's --limit: 2 texts
    records = [json.loads(line) for line in (tmp_path / "out" / CORPUS).read_text(encoding="utf-8").split("\n") if line]
    assert [r["original"] for r in records] == [odd["original"], "later"]
    assert [s["index"] for s in run.summaries()] == [0, 1, 3]


def test_the_join_reads_rows_from_their_files_in_input_order_with_their_texts(tmp_path: Path) -> None:
    """The driver holds where each row lies, not the rows: a row is read from its file when its turn comes, the
    committed records are copied from the old corpus, and the texts are read once, alongside, for the rejected log."""
    from toolcall.data_gen.checkpoint import RunDir
    from toolcall.data_gen.ray_engine import _assemble, read_rows

    run = RunDir(tmp_path / "out", False, {})
    run.commit(0, {"original": "zero é", "text": "zero é", "calls": []}, {"kept": 1})
    run.commit(2, None, {"kept": 0})

    def row(index: int, kept: bool, reason: str) -> str:
        record = json.dumps({"original": f"t{index}", "text": f"t{index}", "calls": []}) if kept else ""
        rejected = [{"stage": "sample", "position": 4, "reason": reason}] if reason else []
        return json.dumps({"id": index, "record": record, "summary": json.dumps({"kept": int(kept)}),
                           "rejected": json.dumps(rejected)}) + "\n"

    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / "b.json").write_text(row(5, True, "past") + row(1, True, "one"))
    (folder / "a.json").write_text(row(3, False, "") + row(1, True, "first copy"))   # a row written twice
    rows = read_rows(folder)
    assert sorted(rows) == [1, 3, 5] and json.loads(rows[1]["rejected"])[0]["reason"] == "first copy"
    texts = [("t0", {}), ("t1 text", {}), ("t2", {}), ("t3", {})]   # this run's --limit: 4 texts
    _assemble(run, rows, iter(texts))
    lines = (tmp_path / "out" / CORPUS).read_text(encoding="utf-8").split("\n")
    assert [json.loads(line)["original"] for line in lines if line] == ["zero é", "t1", "t5"]
    assert [(s["index"], s["kept"]) for s in run.summaries()] == [(0, 1), (1, 1), (2, 0), (3, 0), (5, 1)]
    logged = [json.loads(line) for line in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(entry["index"], entry["before"]) for entry in logged] == [(1, "t1 t"), (5, "")]
    run.close()
    reopened = RunDir(tmp_path / "out", True, {})   # what was written is a whole, committed run
    assert reopened.done == {0, 1, 2, 3, 5}
    reopened.close()


def test_the_join_goes_on_without_texts_when_the_input_cannot_be_read_again(tmp_path: Path) -> None:
    """The rows are there: an input changed (or broken) after the run read it loses only the rejected log's texts,
    not the join (it stopped with corpus.jsonl and progress.jsonl left unjoined)."""
    from toolcall.data_gen.checkpoint import RunDir
    from toolcall.data_gen.config import DataGenConfig
    from toolcall.data_gen.inputs import read_run_inputs
    from toolcall.data_gen.ray_engine import _assemble

    texts = tmp_path / "in.txt"
    texts.write_text("zero\none\n")
    inputs = read_run_inputs(texts, None, DataGenConfig())
    texts.write_text("zero\none\ntwo\n")
    run = RunDir(tmp_path / "out", False, {})
    row = {"record": json.dumps({"original": "one", "text": "one", "calls": []}), "summary": json.dumps({"kept": 1}),
           "rejected": json.dumps([{"stage": "sample", "position": 2, "reason": "x"}])}
    with pytest.warns(RuntimeWarning, match="without their texts from here: input .* changed"):
        _assemble(run, {1: row}, inputs)
    assert [s["index"] for s in run.summaries()] == [1]
    assert json.loads((tmp_path / "out" / "rejected.jsonl").read_text())["before"] == ""
    run.close()


def test_the_driver_reads_the_wiki_corpus_through_but_leaves_its_index_to_the_actors(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from toolcall.data_gen import ray_engine
    from toolcall.tools import _corpus, wikisearch

    from toolcall.cli import main

    built: list[int] = []
    monkeypatch.setattr(_corpus, "index", lambda: built.append(1))
    stats = {"texts_in": 1, "texts_after_prefilter": 1, "texts_kept": 0, "calls_kept": 0, "per_tool": {}}
    monkeypatch.setattr(ray_engine, "run_data_gen_ray", lambda *a, **k: stats)
    texts = tmp_path / "t.txt"
    texts.write_text("Zorblax is a moon.\n")
    good, bad = tmp_path / "wiki.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps({"title": "Zorblax", "text": "Zorblax is a moon of Quux."}) + "\n")
    bad.write_text(json.dumps({"title": "A", "text": "fine"}) + "\nnot json\n")
    base = ["data-gen", "--engine", "ray", "--backend", "fake", "--input", str(texts), "--tools", "wikisearch",
            "--no-progress"]
    try:
        assert main([*base, "--output", str(tmp_path / "o1"), "--wiki-corpus", str(good)]) == 0
        assert built == []   # not indexed where it is not searched
        assert main([*base, "--output", str(tmp_path / "o2"), "--wiki-corpus", str(bad)]) == 1
        assert "bad.jsonl:2: not valid JSON" in capsys.readouterr().err   # but read through: a broken one fails now
        (tmp_path / "empty.txt").write_text("\n\n")
        assert main([*base, "--output", str(tmp_path / "o3"), "--wiki-corpus", str(tmp_path / "empty.txt")]) == 1
        assert "holds no passages" in capsys.readouterr().err
    finally:
        wikisearch.configure(None)
