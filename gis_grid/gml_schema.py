"""A collection's features as a GML 3.2 application schema (XSD).

GDAL reads a collection's fields from an XML schema linked from the collection document
(``rel="describedBy"``, ``type="text/xml"``): its OGC API Tiles client fixes a zoom level's
fields from that schema, not from the first tile it reads (which, at the district's corner,
holds no features and so no attributes), and its OAPIF client types the items' fields from it.
The properties and types are those of ``/collections/{id}/schema`` (gis_grid.features.PROPERTY_SCHEMA).
"""
from __future__ import annotations

from xml.sax.saxutils import quoteattr

from . import features as feat

__all__ = ["MEDIA_TYPE", "gml_schema"]

MEDIA_TYPE = "text/xml"
GML = "http://www.opengis.net/gml/3.2"
#: JSON Schema type (and format) -> XML Schema type
_XS = {("string", None): "xs:string", ("string", "date-time"): "xs:dateTime", ("integer", None): "xs:long",
       ("number", None): "xs:double", ("boolean", None): "xs:boolean"}


def _xs_type(schema: dict) -> str:
    return _XS.get((schema["type"], schema.get("format")), "xs:string")


def gml_schema(base: str, cid: str) -> str:
    """The XSD of collection ``cid``: one feature type named after it, its geometry and its properties."""
    names = feat.properties_of(cid)  # 404 for a collection without one
    geometry = "gml:MultiSurfacePropertyType"  # divisions and buildings are (multi)polygons
    ns = f"{base}/collections/{cid}"
    props = "\n".join(f'          <xs:element name={quoteattr(n)} type="{_xs_type(feat.PROPERTY_SCHEMA[n])}" '
                      f'minOccurs="0" nillable="true"/>' for n in names)
    # the GML import carries no schemaLocation: readers know GML, and none should fetch it from the web
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gml="{GML}" xmlns:app={quoteattr(ns)}
    targetNamespace={quoteattr(ns)} elementFormDefault="qualified" version="1.0">
  <xs:import namespace="{GML}"/>
  <xs:element name={quoteattr(cid)} type={quoteattr("app:" + cid + "Type")} substitutionGroup="gml:AbstractFeature"/>
  <xs:complexType name={quoteattr(cid + "Type")}>
    <xs:complexContent>
      <xs:extension base="gml:AbstractFeatureType">
        <xs:sequence>
          <xs:element name="geometry" type="{geometry}" minOccurs="0" nillable="true"/>
{props}
        </xs:sequence>
      </xs:extension>
    </xs:complexContent>
  </xs:complexType>
</xs:schema>
"""
