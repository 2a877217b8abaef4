"""WAS Node Suite's ``WAS_Remove_Background.remove_background`` ("Image Remove Background (Alpha)") and
WAS's tensor <-> PIL helpers, written out here as WAS ships them, bug included: the helpers truncate to
8 bits, and in ``background`` mode the threshold is rewritten inside the loop. The tests and benchmarks
compare CleanCut's Remove Background (Alpha Threshold) against it.
"""

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps


def was_tensor2pil(image):
    return Image.fromarray(np.clip(255. * image.cpu().numpy().squeeze(), 0, 255).astype(np.uint8))


def was_pil2tensor(image):
    return torch.from_numpy(np.array(image).astype(np.float32) / 255.0).unsqueeze(0)


def was_loop(image, mode, threshold, threshold_tolerance):
    """``WAS_Remove_Background.remove_background`` as WAS ships it, bug included."""
    images = []
    image = [was_tensor2pil(img) for img in image]
    for img in image:
        grayscale_image = img.convert('L')
        if mode == 'background':
            grayscale_image = ImageOps.invert(grayscale_image)
            threshold = 255 - threshold  # WAS's bug: rewritten inside the loop, flips on every image
        blurred_image = grayscale_image.filter(ImageFilter.GaussianBlur(radius=threshold_tolerance))
        binary_image = blurred_image.point(lambda x, t=threshold: 0 if x < t else 255, '1')
        mask = binary_image.convert('L')
        inverted_mask = ImageOps.invert(mask)
        transparent_image = img.copy()
        transparent_image.putalpha(inverted_mask)
        images.append(was_pil2tensor(transparent_image))
    return torch.cat(images, dim=0)
