"""Save a random-weights open_clip checkpoint (default ViT-B-32) for offline
plumbing runs where no pretrained weights are reachable. Attributes from it are
meaningless; only the pipeline is exercised."""

import argparse

import open_clip
import torch

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("out", help="checkpoint file to write, e.g. /tmp/vit-b-32-random.pt")
parser.add_argument("--model", default="ViT-B-32")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)
model = open_clip.create_model(args.model, pretrained=None)
torch.save({"state_dict": model.state_dict()}, args.out)
print(f"random {args.model} weights written to {args.out}")
