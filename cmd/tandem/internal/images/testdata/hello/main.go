// Command hello is the small static binary the image tests put in an image.
package main

import "fmt"

func main() { fmt.Println("hello from a Tandem test image") }
