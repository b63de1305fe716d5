"""Transport: resumable, verified downloads (download), safe archive extraction (archive), and the
two hosts the pipeline fetches from by API (hf_hub: the Hugging Face Hub, zenodo: Zenodo records).
Used by the data sources (data/) and the pre-trained models (pretrained/); knows nothing of either."""
