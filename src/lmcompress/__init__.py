"""lmcompress: Hydra + PyTorch Lightning experiments for compressing transformer language models."""

# Register model classes with transformers' Auto API, so their exports load with
# AutoModel*.from_pretrained once lmcompress is imported (no trust_remote_code):
# - mixcnn: the AMoC base model, model_type bert_mixcnn (docs/amoc.md);
# - dynabert.auto: the head-sliced BERT classes of exported DynaBERT sub-networks
#   (docs/dynabert.md §7).
# Both import torch and transformers' BERT, nothing else heavy.
from lmcompress.models import mixcnn as _amoc_mixcnn  # noqa: F401
from lmcompress.models.dynabert import auto as _dynabert_auto  # noqa: F401
