package uaserver

import (
	"runtime/debug"
	"time"
)

// Build is a server's identity as OPC UA reports it: the ApplicationName
// of its ApplicationDescription (Part 4, 7.2) and its BuildInfo (Part 5,
// 12.4), read as Server.ServerStatus.BuildInfo (i=2260) and its children.
type Build struct {
	// ApplicationName is the human-readable application name
	// (default "uamirror").
	ApplicationName string
	// ProductURI identifies the product (default
	// "urn:uamirror:product").
	ProductURI string
	// ManufacturerName (default "uamirror").
	ManufacturerName string
	// ProductName (default "uamirror").
	ProductName string
	// SoftwareVersion (default the main module's version from the
	// binary's build information, else "dev").
	SoftwareVersion string
	// BuildNumber (default the VCS revision from the build information,
	// else "").
	BuildNumber string
	// BuildDate (default the VCS commit time, else the time the process
	// started).
	BuildDate time.Time
}

// processStart stands in for the build date when the binary carries none.
var processStart = time.Now()

// DefaultBuild returns the identity of a server whose Config names none:
// product "uamirror", version and revision from the binary's build
// information.
func DefaultBuild() Build {
	b := Build{
		ApplicationName:  "uamirror",
		ProductURI:       "urn:uamirror:product",
		ManufacturerName: "uamirror",
		ProductName:      "uamirror",
		SoftwareVersion:  "dev",
		BuildDate:        processStart,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			b.SoftwareVersion = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.BuildNumber = s.Value
			case "vcs.time":
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					b.BuildDate = t
				}
			}
		}
	}
	return b
}

// withDefaults fills the empty fields of b from DefaultBuild.
func (b Build) withDefaults() Build {
	d := DefaultBuild()
	fill := func(f *string, v string) {
		if *f == "" {
			*f = v
		}
	}
	fill(&b.ApplicationName, d.ApplicationName)
	fill(&b.ProductURI, d.ProductURI)
	fill(&b.ManufacturerName, d.ManufacturerName)
	fill(&b.ProductName, d.ProductName)
	fill(&b.SoftwareVersion, d.SoftwareVersion)
	fill(&b.BuildNumber, d.BuildNumber)
	if b.BuildDate.IsZero() {
		b.BuildDate = d.BuildDate
	}
	return b
}
