package keyring

import (
	"os"
	"testing"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
)

func TestMain(m *testing.M) {
	standin.RunIfChild()
	os.Exit(m.Run())
}
