// Package layout holds the tests of the tree's shape: which folder sits on
// which floor and may import what (floors_test.go), the README's Layout
// listing every folder and package (readme_test.go), and the public
// packages standing on their own in a module outside relman's
// (external_test.go).
package layout
