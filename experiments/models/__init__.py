"""Model zoo: ``create_model(name, num_classes, in_channels, image_size, pretrained, checkpoint, **kwargs)``.

Importing this package registers every architecture; ``list_models()`` names them. Each model sets
``classifier_name`` and ``stem_name`` (qualified module names of the final classifier and the first layer).
"""
from . import imagenet, lenet, resnet_cifar, vgg_cifar, vit, wide_resnet  # noqa: F401  (registration)
from .loading import load_checkpoint, load_state_dict_file
from .registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "get_entry", "load_state_dict_file", "load_checkpoint"]
