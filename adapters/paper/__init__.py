"""The paper venue: a persistent, faithful simulation of a linear-perpetual futures venue."""
