"""Model importers (front ends) that turn framework files into edgekit IR."""
