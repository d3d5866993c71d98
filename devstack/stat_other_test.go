//go:build !unix

package devstack

import "os"

// Only used when running as root, which is a Unix notion.
func statUID(fi os.FileInfo) uint32 { return 1 }
