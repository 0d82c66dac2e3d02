"""AMoC at the end of a source-domain fine-tuning run: search layer-removal candidates per target.

Rotman, Feder & Reichart, TACL 2021, arXiv:2101.07086 (docs/amoc.md). Attached by
``conf/callbacks/amoc.yaml`` (the stage ``conf/amoc.yaml``), which starts from the defaults of
``SearchSpec`` and ``RegressionSpec`` (``schema/amoc_*``, lmcompress/schemas.py)::

    amoc:
      _target_: lmcompress.callbacks.amoc.AMoCCallback
      output_dir: ${paths.output_dir}
      targets: null           # every declared target stream but the source's own domain
      seed: ${seed}           # budgets [1, 2, 3], trainable official, ...: SearchSpec's

At ``on_fit_end`` the best checkpoint's weights (else the current ones) are loaded into a copy
of the model, and ``amoc.search.Search`` runs the candidates against the target domains declared
as data streams (``conf/targets/``). Writes ``<output_dir>/amoc/candidates.csv`` (one row per
source x target x candidate) and ``selection.json`` (per target and budget: the choice of the
leave-one-target-out regression on this run's other targets, the baselines and the oracle; the
fits; timing). Under DDP the candidates are shared between the processes (``amoc/shard.py``):
each rank fine-tunes and scores its share, rank 0 gathers the rows, fits the regression and
writes; the other ranks write nothing and wait for rank 0's outcome (its error fails them too).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from lmcompress.amoc.cache import check_supported
from lmcompress.amoc.candidates import check_search, enumerate_candidates
from lmcompress.amoc.features import CANDIDATE_FEATURES, PAIR_FEATURES, metric_for
from lmcompress.amoc.finetune import FinetuneSpec, finetune_chosen
from lmcompress.amoc.progress import CandidateStore
from lmcompress.amoc.regression import RegressionSpec
from lmcompress.amoc.search import Search, SearchData
from lmcompress.amoc.search_spec import SearchSpec
from lmcompress.amoc.select import analyse, check_selectable, json_safe, unselected
from lmcompress.amoc.shard import Shard
from lmcompress.amoc.targets import StreamInfo, domain_name, resolve_targets
from lmcompress.models.surgery import encoder_layers
from lmcompress.specs import parse
from lmcompress.utils.checkpoints import read_checkpoint
from lmcompress.utils.io import write_csv_atomic, write_json_atomic

log = logging.getLogger("lmcompress.amoc")


class AMoCCallback(pl.Callback):
    """Run an AMoC candidate search after fitting (see the module docstring).

    Args:
        output_dir: the run folder; results go to ``<output_dir>/amoc/``.
        targets: target domain names (streams ``<T>_unlabeled`` and ``<T>_test``); null: all
            declared ones except the source's domain. Naming the source's domain is refused.
        source: the source domain's name in the tables (null: the task source's domain).
        regression: ``RegressionSpec`` keys (response, features, p_enter, p_remove).
        finetune: null, or ``FinetuneSpec`` keys (``TrainSpec`` keys and ``methods``): fully
            fine-tune the candidates those methods chose and score them on their targets.
        features_only: only compute the candidates' features and scores. Otherwise a
            (pair, budget) without an AMoC choice fails the stage, before training when the
            regression is bound to be refused (too few rows for its features).
        **search: ``SearchSpec`` keys (budgets, sample_per_budget, trainable, patterns, metric,
            eval_batch_size, seed, independent_subset, train).
    """

    def __init__(self, output_dir: str, targets: list[str] | None = None,
                 source: str | None = None, regression: dict[str, Any] | None = None,
                 finetune: dict[str, Any] | None = None, features_only: bool = False,
                 **search: Any):
        self.out = Path(output_dir) / "amoc"
        self.targets, self.source, self.features_only = targets, source, features_only
        self.spec = parse(SearchSpec, search, "callbacks.amoc")
        self.regression = parse(RegressionSpec, regression, "callbacks.amoc.regression")
        self.finetune = (parse(FinetuneSpec, finetune, "callbacks.amoc.finetune")
                         if finetune is not None else None)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # target names and streams are checked now, not after hours of training
        data = self.search_data(trainer.datamodule, pl_module.task)
        self.validate(pl_module.model, pl_module.task.kind, len(data.targets))

    def validate(self, model: Any, kind: str, num_targets: int) -> None:
        """Refuse options the search could only reject after training: every one, now."""
        check_supported(model)
        metric_for(kind, self.spec.metric)
        num_layers, spec = len(encoder_layers(model)), self.spec
        check_search(num_layers, spec.budgets, spec.patterns, spec.trainable,
                     spec.sample_per_budget, self.regression.features,
                     fixed_features=(*CANDIDATE_FEATURES, *PAIR_FEATURES))
        if not self.features_only:  # the regression must have enough rows to choose
            candidates = enumerate_candidates(num_layers, spec.budgets, spec.sample_per_budget,
                                              spec.seed, spec.patterns)
            check_selectable(num_layers, num_targets, len(candidates), self.regression)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        store = CandidateStore(self.out / "progress",
                               {"run": getattr(pl_module, "run_identity", None)})
        shard = Shard.from_torch()
        search = Search(self.base_model(trainer, pl_module),
                        self.search_data(trainer.datamodule, pl_module.task), self.spec, store,
                        shard)
        table = search.run()  # every rank: its share, then all rows
        shard.publish(lambda: self.select_and_write(trainer, search, store, table))

    def select_and_write(self, trainer: pl.Trainer, search: Search, store: CandidateStore,
                         table: Any) -> None:
        """Rank 0 after the search: the regression, the choices, the optional fine-tune, files."""
        write_csv_atomic(self.out / "candidates.csv", table)
        analysis = analyse(table, self.regression, self.spec.patterns)
        missing = [] if self.features_only else unselected(analysis)
        timing = {**search.timing, "candidates": len(search.candidates),
                  "per_candidate_s": search.timing["search_s"] / len(search.candidates),
                  "independent": search.independent, "reused": store.reused}
        if self.finetune is not None and not missing:
            timing["finetuned"] = finetune_chosen(search, analysis.entries, self.finetune)
            analysis.summary.update(finetuned_summary(analysis.entries, self.finetune.methods))
        self.write_selection(search, analysis, timing, missing)
        if missing:  # the stored candidates stay: a re-run (e.g. features_only) reuses them
            raise RuntimeError(
                f"AMoC selected nothing for {len(missing)} of {len(analysis.entries)} (pair, "
                f"budget) groups: {'; '.join(missing)}. {self.out}/selection.json has the "
                "features; add targets or budgets, or set callbacks.amoc.features_only=true "
                "(docs/amoc.md §7)")
        store.clear()
        flat = {f"amoc/{k}": float(v) for k, v in timing.items() if isinstance(v, int | float)}
        for logger in trainer.loggers:
            logger.log_metrics(flat, step=trainer.global_step)
        log.info("amoc: %d candidates x %d targets in %.1fs (cache %.1fs) -> %s",
                 len(search.candidates), len(search.data.targets), timing["search_s"],
                 timing["cache_s"], self.out)

    def write_selection(self, search: Search, analysis: Any, timing: dict[str, Any],
                        missing: list[str]) -> None:
        """``selection.json``: settings, timing, choices, fits, and any group left unchosen."""
        write_json_atomic(self.out / "selection.json", json_safe({
            "source": search.data.source, "targets": sorted(search.data.targets),
            "metric": search.metric, "trainable": self.spec.trainable,
            "budgets": self.spec.budgets, "response": self.regression.response,
            "timing": timing, "features_only": self.features_only, "unselected": missing,
            **analysis.to_json()}))

    @staticmethod
    def base_model(trainer: pl.Trainer, pl_module: pl.LightningModule) -> Any:
        """An fp32 copy of the model with the best checkpoint's weights (else the current ones).

        On the training device (each DDP rank's own); the search runs there in fp32.
        """
        model = copy.deepcopy(pl_module.model).to(pl_module.device).float()
        checkpoint = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
        if checkpoint:
            state = read_checkpoint(Path(checkpoint))["state_dict"]
            model.load_state_dict({k[len("model."):]: v for k, v in state.items()
                                   if k.startswith("model.")})
            log.info("amoc: base model = %s", checkpoint)
        return model.eval()

    def search_data(self, datamodule: Any, task: Any) -> SearchData:
        """The source splits and target streams of the run's data module (read lazily)."""
        def loader(name: str):
            return lambda: (datamodule.features(name), datamodule.collator(name))

        streams = {name: StreamInfo(domain_name(s.source), s.labels)
                   for name, s in datamodule.streams.items()}
        source_domain = domain_name(datamodule.source)
        targets = resolve_targets(source_domain, streams, self.targets)
        return SearchData(
            source=self.source or source_domain or task.name, kind=task.kind,
            train=loader("train"), dev=loader(datamodule.val_split),
            test=loader(datamodule.test_split) if datamodule.test_split else None,
            targets={t: (loader(s.ate), loader(s.test)) for t, s in targets.items()},
            special_ids=list(datamodule.tokenizer.all_special_ids))


def finetuned_summary(entries: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Mean fully fine-tuned target score of each method's choices (``<method>_finetuned``)."""
    out = {}
    for method in methods:
        values = [e[method]["finetuned_score"] for e in entries if e.get(method)]
        if values:
            out[f"{method}_finetuned"] = {"mean_score": sum(values) / len(values),
                                          "n": len(values)}
    return out

