"""The built-in components, declared by name without importing them: `adbench list`, `--help` and checks
by name answer without loading torch or timm; a component's module is imported when it is first built or
its arguments are checked. A plugin registers with the registries' decorator instead (README, Plugins)."""

from adbench.registry import BACKBONES, DATASETS, NOISE_NETS, SCORERS

DATASETS.declare("synthetic", "adbench.data.synthetic:synthetic",
                 "Embedded default: textures + objects with exact masks, made from a seed")
HELD = {"abilities": ["validation_normals"]}  # the MVTec layout's validation normals (train/good split)
DATASETS.declare("mvtec", "adbench.data.mvtec:MVTecLayout",
                 "MVTec-AD layout folder (--data-root); any dataset in this layout", card=HELD, name="mvtec")
DATASETS.declare("mpdd", "adbench.data.mvtec:MVTecLayout", "MPDD (MVTec layout, --data-root)", card=HELD,
                 name="mpdd")
DATASETS.declare("btad", "adbench.data.mvtec:MVTecLayout", "BTAD (--data-root) in the MVTec layout: `adbench data "
                 "fetch btad` renames its ok folders good", card=HELD, name="btad")
DATASETS.declare("mvtec_loco", "adbench.data.mvtec:MVTecLOCO", "MVTec LOCO AD (--data-root): logical and structural "
                 "anomalies, several masks per image (their union scored); args anomalies: both (each kind "
                 "beside the good images, averaged)|pooled|logical|structural",
                 card={"abilities": ["validation_normals", "defect_regions"]})
DATASETS.declare("mvtec_ad2", "adbench.data.mvtec:MVTecAD2", "MVTec AD 2 (--data-root): train/good and the public "
                 "test set test_public/{good,bad} with masks (the private test sets have no labels)",
                 card={"abilities": ["validation_normals", "private_tests"]})
DATASETS.declare("real_iad", "adbench.data.realiad:RealIAD", "Real-IAD (--data-root): five views per object, splits "
                 "from its JSON files; args resolution 256|512|1024|raw, jsons realiad_jsons|realiad_jsons_sv|"
                 "realiad_jsons_fuiad_<ratio>, views all (object = max over views) or C1..C5")
DATASETS.declare("visa", "adbench.data.visa:VisA", "VisA (split_csv/1cls.csv layout, --data-root)")
DATASETS.declare("bmad", "adbench.data.bmad:BMAD", "BMAD medical benchmark (--data-root): Brain, Liver and RESC "
                 "with masks; OCT2017, RSNA and Camelyon16 image-level",
                 card={"abilities": ["validation_split", "mad_over_available"]})
DATASETS.declare("elpv", "adbench.data.elpv:ELPV", "ELPV solar cells (PyPI elpv-dataset), image-level only")

_TIMM = "adbench.backbones.timm_backbone"
BACKBONES.declare("efficientnet_b4", f"{_TIMM}:efficientnet_b4",
                  "EfficientNet-B4, ImageNet-1k AutoAugment weights (the papers'), stages 1-4, 272 ch @ /16")
BACKBONES.declare("efficientnet_lite0", f"{_TIMM}:efficientnet_lite0",
                  "EfficientNet-Lite0 stages 1-4, 192 ch @ /16; shipped ImageNet weights")
BACKBONES.declare("vit_base", f"{_TIMM}:vit_base", "ViT-B/16 supervised ImageNet-1k, last-block patch tokens")
BACKBONES.declare("dino_vitb16", f"{_TIMM}:dino_vitb16",
                  "DINO ViT-B/16 (self-supervised ImageNet-1k), last-block patch tokens")
BACKBONES.declare("pixels", "adbench.backbones.pixels:Pixels",
                  "No feature extractor (InvAD Table 6 A2): 16x16 pixel patches by space-to-depth, 768 ch @ /16, "
                  "standardised per channel on the training normals")
BACKBONES.declare("timm:*", f"{_TIMM}:any_timm",
                  "Any timm model: timm:<name> (CNN: multi-scale to /16; ViT: patch tokens)")

_MLP, _UNET, _DIT = "adbench.noise_nets.mlp:MLPNoiseNet", "adbench.noise_nets.unet:UNet", "adbench.noise_nets.dit:DiT"
NOISE_NETS.declare("mlp", _MLP, "Per-token MLP, AdaLN-Zero (width 512, depth 6)", width=512, depth=6)
# InvAD Table 8's parameter counts (millions; its "MLP" is mlp_large) and the official modules whose unconditional
# forward never calls them, left out here (at C = 272): the MLP's class-condition projection (768 -> width), the
# DiT's pre-patchified token projection and 15-class label table; the official totals (351.58M, 155.65M,
# 1223.80M) count them, Table 8 rounds those totals
NOISE_NETS.declare("mlp_large", _MLP, "Per-token MLP at InvAD Table 8 scale (width 2048, depth 16)",
                   card={"paper_params_m": 351, "unused_official": ("cond_embed", 768 * 2048 + 2048)}, width=2048,
                   depth=16)
NOISE_NETS.declare("mlp_tiny", _MLP, "Per-token MLP for CPU tests (width 64, depth 2)", width=64, depth=2)
NOISE_NETS.declare("unet", _UNET, "DDPM UNet of the official code: base 512, mults 1,2,3,4, attention at 8x8, "
                   "4x4, 2x2 (InvAD Table 8)", card={"paper_params_m": 1433}, base=512, mults=(1, 2, 3, 4))
NOISE_NETS.declare("unet_tiny", _UNET, "DDPM UNet for CPU tests: base 32, mults 1,2", base=32, mults=(1, 2),
                   num_res_blocks=1, attention_levels=(1,), head_channels=16)
NOISE_NETS.declare("dit_gigant", _DIT, "DiT-gigant: depth 16, width 2048, 8 heads (InvAD/OSD-IRF main)",
                   card={"paper_params_m": 1223, "unused_official": ("x_embedder_linear, y_embedder",
                                                                     272 * 2048 + 2048 + 15 * 2048)},
                   width=2048, depth=16, heads=8)
NOISE_NETS.declare("dit_base", _DIT, "DiT-base: depth 8, width 1024, 8 heads (InvAD Table 8)",
                   card={"paper_params_m": 155, "unused_official": ("x_embedder_linear, y_embedder",
                                                                    272 * 1024 + 1024 + 15 * 1024)},
                   width=1024, depth=8, heads=8)
NOISE_NETS.declare("dit_tiny", _DIT, "DiT for CPU tests: depth 2, width 64, 4 heads", width=64, depth=2, heads=4)

SCORERS.declare("osd_irf_mean", "adbench.scorers.osd_irf:osd_irf_mean",
                "OSD-IRF, mean-path input (Eq. 7), one NFE; t=500")
SCORERS.declare("osd_irf_noisy", "adbench.scorers.osd_irf:osd_irf_noisy",
                "OSD-IRF, noisy-state input (Eq. 6, seeded), one NFE; t=500")
SCORERS.declare("invad", "adbench.scorers.invad:InvAD",
                "InvAD DDIM inversion, steps=3 NFE; subset=code {0,500,999} (official code, default) or even "
                "[333,666,999] (third-party reading of the paper, unverified); steps=0: no inversion (Table 6 A1)")
SCORERS.declare("reconstruction", "adbench.scorers.reconstruction:Reconstruction",
                "Table 4 baseline: S respaced steps, perturb to index floor(ratio*S), denoise that many DDIM steps, "
                "mean feature MSE; ratio=0.4 steps=10 (n/a if ratio*S<1)")
SCORERS.declare("knn", "adbench.scorers.knn:KNN",
                "Reference, no diffusion: nearest-neighbour distance to the training feature bank (PatchCore-style, "
                "greedy coreset 10%); image score = max of the map",
                card={"abilities": ["no_model", "reference"]})
