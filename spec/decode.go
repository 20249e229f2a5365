package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// decodeObject decodes data, which must hold exactly one JSON object, into v.
// Unknown members are ignored; a member of the wrong type is an error naming
// it.
func decodeObject(data []byte, v any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return errors.New("empty input, want a JSON object")
	}
	err := json.Unmarshal(trimmed, v)
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field == "":
		return fmt.Errorf("want a JSON object, got %s", te.Value)
	case errors.As(err, &te):
		return fmt.Errorf("field %q: %w", te.Field, err)
	case err != nil:
		return err
	case trimmed[0] != '{':
		// json.Unmarshal accepts null for a struct and leaves it untouched.
		return errors.New("want a JSON object, got null")
	}
	return nil
}
