"""The embedded demo: synthetic sound scenes with captions (scenes), made from numpy-synthesised
foreground and background sounds (sounds). Offline stand-in for the paper's data, never mistaken
for it: every key, path and `source` value says `demo`."""
