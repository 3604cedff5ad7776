//go:build tools

// Package tools records the commands this wrapper module builds.
package tools
