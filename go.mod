module github.com/oci-keyring-hook/oci-keyring-hook

go 1.26.0

require (
	github.com/opencontainers/runtime-spec v1.3.0
	github.com/sirupsen/logrus v1.10.2
	go.yaml.in/yaml/v3 v3.0.5
	golang.org/x/sys v0.50.0
)
