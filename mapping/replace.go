package mapping

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ReplaceMappingsYAML returns the config document src with its top-level
// `mappings:` replaced by ms, keeping everything else of src as written:
// comments (of the servers, groups, engine and of the file), key order,
// anchors. A comment attached to the `mappings:` key itself stays; the
// comments inside the old mappings go with them. When src has no
// `mappings:` key, one is appended. It checks no more than that src is a
// YAML mapping; validate the result with ParseAndValidate.
func ReplaceMappingsYAML(src []byte, ms []Mapping) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("mapping: replace mappings: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("mapping: replace mappings: the config is not a YAML mapping")
	}
	// The new mappings, as MarshalYAML writes them, as a node.
	out, err := MarshalYAML(&Config{Mappings: ms})
	if err != nil {
		return nil, err
	}
	var fresh yaml.Node
	if err := yaml.Unmarshal(out, &fresh); err != nil {
		return nil, fmt.Errorf("mapping: replace mappings: %w", err)
	}
	var list *yaml.Node
	if len(fresh.Content) == 1 {
		for i := 0; i+1 < len(fresh.Content[0].Content); i += 2 {
			if fresh.Content[0].Content[i].Value == "mappings" {
				list = fresh.Content[0].Content[i+1]
			}
		}
	}
	if list == nil { // no mappings: an explicit empty list
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	}
	root := doc.Content[0]
	found := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "mappings" {
			old := root.Content[i+1]
			// Comments after the old list (a trailing comment of the file)
			// stay with the document.
			list.FootComment = old.FootComment
			root.Content[i+1] = list
			found = true
		}
	}
	if !found {
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "mappings"}, list)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("mapping: replace mappings: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("mapping: replace mappings: %w", err)
	}
	return buf.Bytes(), nil
}
