"""Network building blocks shared by several methods (a method never imports another method)."""
