"""The real ``driftline`` command (a subprocess of the venv's script) against the real broker.

An expected failure prints one line saying why and what to do, exits non-zero and prints
no traceback; librdkafka's own lines never reach stderr raw.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from driftline import __version__

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DRIFTLINE = str(Path(sys.executable).with_name("driftline"))
ELEC = ROOT.parent / "shared" / "data" / "elec.csv"
ELEC_FEATURES = '{ period = "num", nswprice = "num", nswdemand = "num", vicprice = "num", vicdemand = "num", transfer = "num" }'


def cli(*args: str, timeout: float = 120, cwd: Path = ROOT, env_extra: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_SNAPSHOT_KEY"] = "cli-test-key-0123456789"
    env.update(env_extra or {})
    return subprocess.run([DRIFTLINE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def assert_fails_with(result: subprocess.CompletedProcess, message: str) -> None:
    """Non-zero exit, ``message`` on the one non-JSON stderr line, no traceback, no raw librdkafka line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1 and plain[0].startswith("Error: "), result.stderr
    assert message in plain[0], plain[0]
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            orjson.loads(line)  # every other line is a JSON log line


def write_config(path: Path, config, features: str | None = ELEC_FEATURES, extra: str = "") -> Path:
    text = f'name = "{config.name}"\n\n[kafka]\nbootstrap_servers = "{config.kafka.bootstrap_servers}"\n\n'
    text += f'[checkpoint]\nstore_url = "{config.checkpoint.store_url}"\n\n'
    if features:
        text += f'[model]\ntask = "classification"\nfeatures = {features}\nclasses = [0, 1]\n\n'
    path.write_text(text + extra)
    return path


def deployment_args(config) -> list[str]:
    return ["--name", config.name, "--bootstrap", config.kafka.bootstrap_servers, "--store", config.checkpoint.store_url]


def test_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"driftline, version {__version__}"


def test_produce_to_an_unreachable_cluster_fails_within_seconds():
    # before: hundreds of raw librdkafka lines, then "produced 10 events" and exit 0 after 60 s
    result = cli("--bootstrap", "127.0.0.1:1", "produce", str(ELEC), "--limit", "10")
    assert_fails_with(result, "cannot reach Kafka at bootstrap 127.0.0.1:1")
    assert not any(line.startswith("%") for line in result.stderr.splitlines())
    kafka_lines = [orjson.loads(line) for line in result.stderr.splitlines() if '"driftline.kafka"' in line]
    assert 1 <= len(kafka_lines) <= 5  # rate-limited, through the JSON logs


def test_produce_into_a_deployment_without_topics_says_to_create_them(make_config):
    config = make_config(create=False)  # before: a traceback ending "Unknown topic or partition"
    result = cli(*deployment_args(config), "produce", str(ELEC), "--limit", "10")
    assert_fails_with(result, "run `driftline topics create`")


def test_produce_refuses_a_csv_that_does_not_match_the_schema(make_config, tmp_path):
    config = make_config()
    rows = ELEC.read_text().splitlines()[:20]
    label_first = tmp_path / "label-first.csv"
    label_first.write_text("\n".join(",".join([r.split(",")[-1], *r.split(",")[:-1]]) for r in rows) + "\n")
    toml = write_config(tmp_path / "elec.toml", config)
    result = cli("-c", str(toml), "produce", str(label_first))
    assert_fails_with(result, "unexpected class; missing transfer; if class is the label column, name it as the "
                              "target (driftline produce --target class); nothing was sent")
    ok = cli("-c", str(toml), "produce", str(label_first), "--target", "class")
    assert ok.returncode == 0, ok.stderr
    assert "produced 19 events and 19 labels" in ok.stdout


def test_a_run_that_dead_letters_everything_says_so(make_config, tmp_path):
    config = make_config()
    toml = write_config(tmp_path / "elec.toml", config, extra="[processor]\ndead_letter_warn_after = 50\n")
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers})
    for i in range(120):  # the label published as a feature, as a label-first CSV without --target did
        body = {"id": f"e{i}", "features": {"class": 1, "period": 0.1, "nswprice": 0.1, "nswdemand": 0.1,
                                            "vicprice": 0.1, "vicdemand": 0.1}}
        producer.produce(config.topics.features, key=f"e{i}".encode(), value=orjson.dumps(body))
    assert producer.flush(10) == 0
    result = cli("-c", str(toml), "run", "--exit-when-idle", "2", "--metrics-port", "0")
    assert result.returncode == 0, result.stderr
    warnings = [orjson.loads(line) for line in result.stderr.splitlines()
                if line.startswith("{") and "dead letters in a row" in line]
    assert [(w["severity_text"], w["attributes"]["in_a_row"], w["attributes"]["reason"]) for w in warnings] == [("WARNING", 50, "missing_feature")]
    summary = orjson.loads(result.stdout)
    assert summary["dead_letters"] == {"this_run": 120, "by_reason": {"missing_feature": 120}}
    assert "warning: 120 input records of this run were dead-lettered (missing_feature 120)" in result.stderr


@pytest.mark.parametrize("flag", ["--metrics-port", "--admin-port"])
def test_a_port_in_use_is_named_with_what_to_do(make_config, flag):
    config = make_config()
    with socket.socket() as busy:  # before: a traceback with OSError [Errno 98]
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(*deployment_args(config), "run", flag, str(port), "--max-seconds", "1")
    assert_fails_with(result, f"on port {port} ({flag}): the port is already in use; stop the process using it "
                              f"or choose another port with {flag}")


def test_preset_takes_a_module_factory_path(make_config):
    config = make_config()  # before: "unknown model preset 'river.tree:HoeffdingTreeClassifier'"
    result = cli(*deployment_args(config), "--preset", "river.tree:HoeffdingTreeClassifier",
                 "run", "--exit-when-idle", "1", "--metrics-port", "0")
    assert result.returncode == 0, result.stderr
    listed = cli(*deployment_args(config), "models", "show", "1")
    assert re.search(r"model_class\s+HoeffdingTreeClassifier", listed.stdout), listed.stdout


def test_tail_prints_readable_records_and_exits_when_idle(make_config):
    config = make_config()
    producer = Producer({"bootstrap.servers": config.kafka.bootstrap_servers})
    bodies = [orjson.dumps({"id": f"k{i}", "features": {"x": i}}) for i in range(15)]
    for i, body in enumerate(bodies):
        producer.produce(config.topics.features, key=f"k{i}".encode(), value=body)
    assert producer.flush(10) == 0
    # before: nothing shown (it started at the end) and it never exited (the timeout raises)
    result = cli(*deployment_args(config), "tail", "features", timeout=60)
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith(config.topics.features)]
    assert [h.split("key=")[1].split()[0] for h in heads] == [f"k{i}" for i in range(5, 15)]  # the last 10
    assert '\n  {\n    "id": "k14",\n    "features": {\n      "x": 14\n    }\n  }\n' in result.stdout
    raw = cli(*deployment_args(config), "tail", "features", "--from-beginning", "--json")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.splitlines() == [b.decode() for b in bodies]


def test_the_demo_prints_commands_that_work_as_printed(make_config, tmp_path):
    config = make_config(create=False)
    demo = cli(*deployment_args(config), "--preset", "hoeffding_tree", "demo", "--events", "1500",
               "--drift-every", "500", "--label-delay", "10", "--rate", "3000", timeout=180)
    assert demo.returncode == 0, demo.stderr
    commands = demo.stdout.split("\nExplore:\n")[1].strip().splitlines()
    assert len(commands) == 4 and all("--bootstrap " + config.kafka.bootstrap_servers in c for c in commands)
    assert "live page: http://127.0.0.1:" in demo.stdout
    for command in commands:  # from another directory's shell, without DRIFTLINE_BOOTSTRAP_SERVERS
        argv = shlex.split(command)
        assert argv[0] == DRIFTLINE
        result = cli(*argv[1:], cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.strip(), command
    assert "key=" in cli(*shlex.split(commands[1])[1:]).stdout
    assert "<svg" in (tmp_path / "report.html").read_text()  # the last command wrote the report


def test_the_readme_commands_work_as_printed(make_config, tmp_path):
    """README's "Using it" block, on a fresh deployment: only the broker, name and store differ."""
    config = make_config(create=False)
    block = ROOT.joinpath("README.md").read_text().split("## Using it")[1].split("```bash")[1].split("```")[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.startswith(".venv/bin/driftline")]
    prefix = ".venv/bin/driftline -c deploy/driftline.toml "
    assert all(c.startswith(prefix) for c in commands), commands
    run = next(c for c in commands if c.startswith(prefix + "run "))
    commands.remove(run)
    commands.insert(commands.index(next(c for c in commands if c.startswith(prefix + "produce "))) + 1, run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_SNAPSHOT_KEY"] = "cli-test-key-0123456789"
    ours = shlex.join([DRIFTLINE, "-c", "deploy/driftline.toml", *deployment_args(config)]) + " "
    outputs = {}
    for command in commands:
        args = command.removeprefix(prefix)
        if args.startswith("run "):  # in its own terminal in the README; here until idle, no fixed port
            args = "run --exit-when-idle 2 --metrics-port 0"
        elif args.startswith("produce "):
            args += " --limit 300"
        result = subprocess.run(["bash", "-c", ours + args], capture_output=True, text=True, timeout=180,
                                env=env, cwd=ROOT)
        assert result.returncode == 0, (command, result.stderr)
        outputs[args.split()[0] + " " + args.split()[1]] = result.stdout
    assert "key=e299" in outputs["tail predictions"]
    assert re.search(r"key e12 at \d+ .* was served by version \d+", outputs["models history"])


def start_run(*args: str, env_extra: dict[str, str] | None = None) -> tuple[subprocess.Popen, list[str]]:
    """``driftline run`` in the background; returns it and its stderr lines (read by a thread)
    once it logged "processing"."""
    import threading

    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_SNAPSHOT_KEY"] = "cli-test-key-0123456789"
    env.update(env_extra or {})
    proc = subprocess.Popen([DRIFTLINE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 60
    while not any('"processing"' in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.1)
    return proc, lines


def test_a_fenced_processor_says_another_instance_took_over_and_exits_3(make_config, tmp_path):
    from driftline.runtime.processor import EXIT_FENCED

    config = make_config()
    toml = write_config(tmp_path / "elec.toml", config)
    proc, lines = start_run("-c", str(toml), "run", "--metrics-port", "0", "--max-seconds", "90")
    try:
        usurper = Producer({"bootstrap.servers": config.kafka.bootstrap_servers,
                            "transactional.id": config.transactional_id})
        usurper.init_transactions(30)  # what a second instance of the deployment does first
        produced = cli("-c", str(toml), "produce", str(ELEC), "--limit", "50")  # the next transaction fails
        assert produced.returncode == 0, produced.stderr
        proc.wait(60)
    finally:
        proc.kill()
    stderr = "".join(lines)  # before: a KafkaError{FATAL,code=_FENCED} traceback, exit 1
    assert proc.returncode == EXIT_FENCED == 3, stderr
    assert "Traceback" not in stderr, stderr
    plain = [line for line in lines if not line.startswith("{")]
    assert plain == [f"Error: another instance of deployment {config.name} took over (same transactional.id "
                     f"{config.transactional_id}): this one stops\n"], stderr
    logged = [orjson.loads(line) for line in lines if line.startswith("{") and "took over" in line]
    assert [entry["severity_text"] for entry in logged] == ["ERROR"], stderr


TOKEN = {"DRIFTLINE_ADMIN_TOKEN": "cli-test-token-0123456789"}


def test_embedded_promote_refuses_while_the_deployment_runs_and_names_the_admin_url(make_config, tmp_path):
    from driftline.runtime.liveness import live_instances

    config = make_config()
    toml = write_config(tmp_path / "elec.toml", config)
    assert cli("-c", str(toml), "produce", str(ELEC), "--limit", "200").returncode == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc, lines = start_run("-c", str(toml), "run", "--metrics-port", "0", "--admin-port", str(port),
                            "--max-seconds", "120", env_extra=TOKEN)
    try:
        deadline = time.monotonic() + 30
        while not live_instances(config):  # the broker has the processor's .live membership
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        # before: an embedded processor started, fenced the running one and exited 0
        refused = cli("-c", str(toml), "models", "promote", "--version", "1", "--reason", "test")
        assert_fails_with(refused, f"the deployment is running: use --admin-url http://127.0.0.1:{port} "
                                   f"(1 instance of {config.name}: pid={proc.pid} ")
        rolled = cli("-c", str(toml), "models", "rollback", "--to", "1")
        assert_fails_with(rolled, "the deployment is running: use --admin-url")
        time.sleep(2)
        assert proc.poll() is None, "".join(lines)  # not fenced
        via_api = cli("-c", str(toml), "models", "promote", "--version", "1", "--admin-url", f"http://127.0.0.1:{port}",
                      env_extra=TOKEN)
        assert via_api.returncode == 0, via_api.stderr
        proc.terminate()
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        proc.kill()
    assert not any("took over" in line for line in lines), "".join(lines)
    stopped = cli("-c", str(toml), "models", "promote", "--version", "1", "--idle", "1")  # stopped: embedded again
    assert stopped.returncode == 0, stopped.stderr
    assert f"promote: {config.name} -> version" in stopped.stdout


def test_champion_names_the_version_that_serves_and_history_intervals_are_ordered(make_config, tmp_path):
    config = make_config()
    toml = write_config(tmp_path / "elec.toml", config)
    toml.write_text(toml.read_text().replace("[checkpoint]\n", "[checkpoint]\nevery_examples = 100\n"))
    assert cli("-c", str(toml), "produce", str(ELEC), "--limit", "450").returncode == 0
    run = cli("-c", str(toml), "run", "--exit-when-idle", "2", "--metrics-port", "0")
    assert run.returncode == 0, run.stderr
    latest = orjson.loads(run.stdout)["version"]
    assert latest >= 3

    def shown(version: str) -> dict[str, str]:
        result = cli("-c", str(toml), "models", "show", version)
        assert result.returncode == 0, result.stderr
        return dict(line.split(None, 1) for line in result.stdout.splitlines() if len(line.split(None, 1)) == 2)

    champion = shown("champion")  # before: version 1, examples_seen 0, while the latest version served
    assert (int(champion["version"]), int(champion["examples_seen"])) == (latest, 450), champion
    rolled = cli("-c", str(toml), "models", "rollback", "--to", "1", "--idle", "1")
    assert rolled.returncode == 0, rolled.stderr
    after = shown("champion")  # the rollback's version (and the embedded run's shutdown cut of it) serves now
    assert int(after["version"]) > latest and int(after["examples_seen"]) == 0, after
    history = cli("-c", str(toml), "models", "history")
    assert history.returncode == 0, history.stderr
    rows = [line.split() for line in history.stdout.split("\n\n")[0].splitlines() if line.split()[0].isdigit()]
    intervals = [(int(r[2]), None if not r[3].isdigit() else int(r[3])) for r in rows]
    assert len(intervals) == int(after["version"]) and intervals[-1][1] is None
    # before: the version before the rollback served "after T1 until T2" with T2 < T1
    assert all(end >= start for start, end in intervals[:-1]), history.stdout


def test_erase_says_in_one_line_when_the_subject_is_unknown_or_no_version_precedes_it(make_config, tmp_path):
    config = make_config()
    toml = write_config(tmp_path / "elec.toml", config)
    assert cli("-c", str(toml), "produce", str(ELEC), "--limit", "300").returncode == 0
    ran = cli("-c", str(toml), "run", "--exit-when-idle", "2", "--metrics-port", "0")
    assert ran.returncode == 0, ran.stderr

    unknown = cli("-c", str(toml), "erase", "--id", "nobody", "--idle", "1")
    assert_fails_with(unknown, "erase: no events of id 'nobody' in ")
    both = cli("-c", str(toml), "erase", "--id", "e1", "--key", "e1")
    assert both.returncode == 2 and "give exactly one of --key or --id" in both.stderr

    # Without the initial version (as if retention had deleted it), every stored version has seen e5.
    store = tmp_path / "versions" / config.name
    (store / "v00000001.snap").unlink()
    late = cli("-c", str(toml), "erase", "--id", "e5", "--idle", "1")
    assert_fails_with(late, "erase: no stored version before the subject's first event (features:0 offset 5")
    assert "nothing changed" in late.stderr
