"""Put lmcompress's conf/ on Hydra's search path, so sweeps/<id>/sweep.yaml can extend stages."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class LMCompressSearchPathPlugin(SearchPathPlugin):
    """Append ``file://<repo>/conf`` to every Hydra search path."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        from lmcompress.utils.paths import conf_dir

        search_path.append(provider="lmcompress", path=f"file://{conf_dir()}")
