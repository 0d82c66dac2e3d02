"""The whole report: tables with baseline and paper columns, paired tests, files, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fake_sweeps import F1, job_metrics, mrpc_sweep, write_job, write_multirun

from lmcompress.report.__main__ import main
from lmcompress.report.build import build_report
from lmcompress.report.config import load_config, paper_table

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "name": "mrpc", "title": "fake MRPC",
    "derive": {"student": "{num_layers}L/{hidden_size}"},
    "group_by": ["student", "loss"],
    "metrics": [{"key": "val/f1", "name": "dev F1", "scale": 100},
                {"key": "val/accuracy", "name": "dev acc", "scale": 100}],
    "paired": [{"key": "loss", "a": "kd_ckd", "b": "kd", "metrics": ["val/f1"]}],
    "baselines": [{"name": "majority class", "values": {"val/f1": 0.8122},
                   "source": "279 of 408 dev pairs"}],
    "paper": {"table": "ckd_6l_task_specific", "task": "mrpc", "rows": {"loss": "kd_ckd"}},
}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Rows of the first Markdown table keyed by their first two cells."""
    table = markdown.split("\n\n")[2].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    return {" ".join(row[:2]).strip(): row for row in cells[2:]} | {"header": cells[0]}


def test_report_values_baseline_and_paper(tmp_path, config):
    report = build_report([mrpc_sweep(tmp_path)], load_config(config), tmp_path / "out")
    rows = table_rows(report.markdown)
    assert rows["header"] == ["student", "loss", "n", "params (M)", "dev F1", "paper dev F1",
                              "Δ dev F1", "dev acc"]
    kd_ckd_mean = 100 * sum(F1["kd_ckd"].values()) / 3  # 83.33
    assert rows["3L/384 kd"] == ["3L/384", "kd", "3", "17.0", "81.00 ± 1.00", "", "",
                                 "71.00 ± 1.00"]
    assert rows["3L/384 kd_ckd"][5] == "89.6"
    assert rows["3L/384 kd_ckd"][6] == f"{kd_ckd_mean - 89.6:+.2f}".replace("-", "−") == "−6.27"
    assert rows["majority class"] == ["majority class", "", "–", "", "81.22", "", "", "–"]
    assert "Source: Park, Kim & Yang, EMNLP 2021" in report.markdown
    assert "Not verified against the paper: Read off the GLMKD image" in report.markdown


def test_report_paired_section_and_failures(tmp_path, config):
    out = tmp_path / "out"
    report = build_report([mrpc_sweep(tmp_path)], load_config(config), out)
    paired = report.markdown.split("## Paired comparisons")[1].split("\n## ")[0]
    assert "| 3L/384 | kd_ckd − kd | dev F1 | 3 | +2.33 |" in paired
    assert "| 2/3 |" in paired
    failures = (out / "failures.md").read_text()
    assert "# Failed or missing jobs: 2" in failures
    assert "RuntimeError: DefaultCPUAllocator" in failures
    assert "| 7 | planned, never started | loss=kd_ckd seed=4 trainer.max_epochs=1 |" in failures
    assert "## Failed or missing jobs" in report.markdown
    names = sorted(p.name for p in report.files)
    # every job has the same size: no accuracy-vs-size or -latency plot, only the seed spread
    assert names == ["failures.md", "mrpc.md", "mrpc.tex", "mrpc_seeds.png"]
    assert all(p.stat().st_size > 0 for p in report.files)
    assert (out / "mrpc_seeds.png").read_bytes()[:4] == b"\x89PNG"
    tex = (out / "mrpc.tex").read_text()
    assert r"\begin{tabular}{llrrrrrr}" in tex and r"81.00 $\pm$ 1.00" in tex
    assert r"$-$6.27" in tex


def test_stale_failures_file_is_removed(tmp_path):
    sweep = tmp_path / "ok"
    write_job(sweep, 0, ["seed=1"], job_metrics(1, {"val/f1": 0.5}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "failures.md").write_text("old")
    report = build_report([sweep], load_config(), tmp_path / "out")
    assert not (tmp_path / "out" / "failures.md").exists()
    # defaults: group by task (nothing swept), the main metric ×100
    assert "| glue_mrpc | 1 | 17.0 | 50.00 |" in report.markdown


def test_cli_prints_table_and_finds_the_sweeps_report_yaml(tmp_path, config, capsys):
    sweep = mrpc_sweep(tmp_path)
    write_multirun(sweep, {"loss": "kd,kd_ckd", "seed": "range(1,5)"}, ["trainer.max_epochs=1"],
                   config_dir=config.parent)
    assert main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# fake MRPC")
    assert "| 3L/384 | kd | 3 | 17.0 | 81.00 ± 1.00 |" in printed
    assert (sweep / "report" / "mrpc.md").read_text() == printed.removesuffix("\n")


@pytest.mark.parametrize("path", sorted(REPO.glob("sweeps/*/report*.yaml")),
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sweep_report_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.parent.name and cfg.metrics


def test_paper_numbers_name_their_source():
    for table_id in ("ckd_6l_task_specific", "ckd_6l_task_agnostic"):
        table = paper_table(table_id)
        assert table["verified"] is False and "GLMKD" in table["source"]
    assert paper_table("ckd_6l_task_specific")["numbers"]["sst2"] == {"accuracy": 93.0}


def test_paper_numbers_per_task_in_a_multi_task_table(tmp_path):
    from fake_sweeps import job_metrics, write_job, write_multirun

    from lmcompress.report.build import build_report

    sweep = tmp_path / "glue"
    write_multirun(sweep, {"task": "glue/mrpc,glue/sst2", "seed": "1,2"})
    values = {("glue_mrpc", 1): {"val/f1": 0.88, "val/accuracy": 0.8},
              ("glue_mrpc", 2): {"val/f1": 0.90, "val/accuracy": 0.82},
              ("glue_sst2", 1): {"val/accuracy": 0.92}, ("glue_sst2", 2): {"val/accuracy": 0.94}}
    for number, ((task, seed), val) in enumerate(values.items()):
        write_job(sweep, number, [f"task=glue/{task[5:]}", f"seed={seed}"],
                  {**job_metrics(seed, val), "task": task})
    config = tmp_path / "report.yaml"
    config.write_text(
        "name: glue\ngroup_by: [task]\nmetrics:\n"
        "  - {key: val/f1, name: F1, scale: 100}\n  - {key: val/accuracy, name: acc, scale: 100}\n"
        "paper: {table: ckd_6l_task_specific, tasks: {glue_mrpc: mrpc, glue_sst2: sst2}}\n")
    report = build_report([sweep], load_config(config), tmp_path / "out")
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
             for line in report.markdown.splitlines() if line.startswith("| glue/")}
    header = next(line for line in report.markdown.splitlines() if line.startswith("| task"))
    columns = [c.strip() for c in header.split("|")[2:-1]]
    mrpc = dict(zip(columns, lines["glue/mrpc"], strict=True))
    sst2 = dict(zip(columns, lines["glue/sst2"], strict=True))
    assert mrpc["paper F1"] == "89.6" and mrpc["Δ F1"] == "−0.60"
    assert sst2["paper acc"] == "93" and sst2["Δ acc"] == "+0.00" and mrpc["paper acc"] == ""


def test_tradeoff_plots_need_two_sizes(tmp_path, config):
    sweep = tmp_path / "sizes"
    write_multirun(sweep, {"student.num_layers": "3,6", "seed": "1,2"}, ["loss=kd"])
    for number, (layers, seed) in enumerate([(3, 1), (3, 2), (6, 1), (6, 2)]):
        write_job(sweep, number, [f"student.num_layers={layers}", f"seed={seed}", "loss=kd"],
                  job_metrics(seed, {"val/f1": 0.8 + layers / 100, "val/accuracy": 0.7},
                              params=layers * 3_000_000, layers=layers))
    report = build_report([sweep], load_config(config), tmp_path / "out")
    names = sorted(p.name for p in report.files)
    assert names == ["mrpc.md", "mrpc.tex", "mrpc_latency_ms_b1.png", "mrpc_params.png",
                     "mrpc_seeds.png"]
    assert (tmp_path / "out" / "mrpc_params.png").read_bytes()[:4] == b"\x89PNG"


def test_group_by_key_absent_from_these_jobs_is_an_empty_column(tmp_path):
    # ckd_ablation's report groups by loss.ckd.window, which only its window sweep varies
    cfg = {"name": "abl", "group_by": ["loss", "loss.ckd.window"],
           "metrics": [{"key": "val/f1", "scale": 100}], "plots": []}
    path = tmp_path / "report.yaml"
    path.write_text(yaml.safe_dump(cfg))
    report = build_report([mrpc_sweep(tmp_path)], load_config(path), tmp_path / "out")
    assert "| kd | – | 3 |" in report.markdown
    path.write_text(yaml.safe_dump({**cfg, "group_by": ["los"]}))
    with pytest.raises(KeyError, match=r"group_by \['los'\]: no such job column"):
        build_report([mrpc_sweep(tmp_path / "again")], load_config(path), tmp_path / "out2")
