"""lmcompress: Hydra + PyTorch Lightning experiments for compressing transformer language models."""

# Register model classes with transformers' Auto API, so their exports load with
# AutoModel*.from_pretrained once lmcompress is imported (no trust_remote_code):
# dynabert.auto holds the head-sliced BERT classes of exported DynaBERT sub-networks
# (docs/dynabert.md §7). It imports torch and transformers' BERT, nothing else heavy.
from lmcompress.models.dynabert import auto as _dynabert_auto  # noqa: F401
