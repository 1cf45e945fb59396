"""The catalog: datasets and their classified columns (分类分级), products, operators, licences."""
