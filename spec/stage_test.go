package spec

import (
	"strings"
	"testing"
)

func TestParseStage(t *testing.T) {
	tests := []struct {
		in      string
		want    Stage
		wantErr bool
	}{
		{"prestart", StagePrestart, false},
		{"createRuntime", StageCreateRuntime, false},
		{"", "", true},
		{"Prestart", "", true},
		{"createruntime", "", true},
		{"createContainer", "", true},
		{"poststart", "", true},
		{" prestart", "", true},
		{"prestart\n", "", true},
	}
	for _, tc := range tests {
		got, err := ParseStage(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseStage(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !(strings.Contains(err.Error(), `"prestart"`) && strings.Contains(err.Error(), `"createRuntime"`)) {
			t.Errorf("ParseStage(%q) error %q does not list the valid stages", tc.in, err)
		}
	}
}
