"""The pre-trained parts (CLAP text encoder and re-ranker, 48 kHz HiFi-GAN, PANNs): which ones the
pipeline uses (models), fetching them once into a verified folder (fetch), checking such a folder
(folder), and loading transformers' CLAP from one, offline (clap)."""
