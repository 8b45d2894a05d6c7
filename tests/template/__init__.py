"""template.yaml: what `sam validate --lint` and cfn-lint cannot know, split by concern."""
