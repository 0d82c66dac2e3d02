"""Put lmcompress's conf/ on Hydra's search path and store the ``schema/*`` nodes it starts from.

conf/ on the search path lets sweeps/<id>/sweep.yaml extend stages; ``schema/*`` are the typed
specs' defaults (lmcompress/schemas.py). Hydra calls this plugin before it composes anything
(``hydra.main``, ``compose``, ``--cfg``), so every composition finds them without the caller
registering them.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LMCompressSearchPathPlugin(SearchPathPlugin):
    """Append ``file://<repo>/conf`` to every Hydra search path; register ``schema/*``."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from lmcompress.schemas import register_schemas
        from lmcompress.utils.paths import conf_dir

        register_schemas()

        search_path.append(provider="lmcompress", path=f"file://{conf_dir()}")
